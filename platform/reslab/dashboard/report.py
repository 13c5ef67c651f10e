"""A study's report as one self-contained HTML file: its table beside the paper's numbers, its error
curves, Fig. 7 and the search when the study has them, its trials and the nets it registered.

Every string from the store is escaped (tables by pandas, figure labels in `figures`, the rest here): anyone
who can write to a store chooses them, and a script among them would run in the browser of whoever opens the
report. Plotly's JavaScript is inlined once, so the file opens offline, can be mailed or attached to a paper's
supplement, and still zooms and hovers. It is built from the same queries and figures as the dashboard,
so the report and the dashboard cannot disagree.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime

import pandas as pd
import plotly.graph_objects as go

from .. import __version__
from ..results.summary import paper_table
from ..results.verdicts import INTERVAL
from .figures import error_curve_figure, layer_response_figure, search_figure
from .queries import (
    error_curves,
    layer_responses,
    registered_models,
    results_table,
    search_trials,
    study_definition,
    trial_counts,
    trial_runs,
)
from .scorecard import study_verdicts, verdict_view

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; color: #222; padding: 0 1rem; }
h1 { margin-bottom: 0.2rem; } h2 { margin-top: 2.5rem; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5rem 0; font-size: 0.92rem; }
th, td { padding: 0.3rem 0.7rem; border-bottom: 1px solid #eee; text-align: left; max-width: 26rem; }
td { font-variant-numeric: tabular-nums; } section { overflow-x: auto; }
.meta { color: #666; font-size: 0.9rem; } .meta code { font-size: 0.85rem; }
.caption { color: #666; font-size: 0.88rem; }
"""

TRIAL_COLUMNS = [
    "variant", "seed", "status", "train_error", "test_error", "iterations", "lr", "weight_decay", "batch_size",
    "milestones", "data_dir", "run_id",
]  # fmt: skip
HEADINGS = {"train_error": "train error %", "test_error": "test error %", "run_id": "MLflow run"}


def _table(frame: pd.DataFrame) -> str:
    """A DataFrame as an HTML table (cells escaped), errors to two decimals."""
    return frame.rename(columns=HEADINGS).to_html(index=False, border=0, na_rep="—", float_format=lambda v: f"{v:.2f}")


def _figure(figure: go.Figure, height: int) -> str:
    """A figure as a <div> and its drawing <script>; plotly.js itself is in the page's <head> once."""
    config = {"displaylogo": False, "responsive": True}
    return figure.to_html(full_html=False, include_plotlyjs=False, default_height=f"{height}px", config=config)


def _section(heading: str, *parts: str) -> str:
    return f"<section><h2>{html.escape(heading)}</h2>\n" + "\n".join(parts) + "\n</section>"


def _caption(text: str) -> str:
    return f'<p class="caption">{html.escape(text)}</p>'


def study_report(uri: str, experiment: str, *, generated: datetime | None = None) -> str:
    """The report of `experiment` (a study's name-profile, as the dashboard lists it) in the store at
    `uri`, as one HTML document with no outside references. Raises LookupError naming the studies
    there when there is no such study, StoreUnavailable when the store cannot be read."""
    from plotly.offline import get_plotlyjs

    definition = study_definition(uri, experiment)
    runs = trial_runs(uri, experiment)
    title = f"{experiment}: {definition.title}" if definition.title else experiment
    when = (generated or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    meta = [html.escape(trial_counts(runs)), f"profile {html.escape(definition.profile or '?')}"]
    meta += [f"store <code>{html.escape(uri)}</code>", f"written {when} by reslab {__version__}"]
    provenance = "".join(
        f"<li>{html.escape(key)}: <code>{html.escape(value)}</code></li>"
        for key, value in definition.provenance.items()
    )
    sections = [
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="meta">{" · ".join(meta)}</p>',
        f'<details class="meta"><summary>launch</summary><ul>{provenance}</ul></details>' if provenance else "",
    ]

    results = paper_table(results_table(runs, definition))
    sections.append(
        _section(
            "Results beside the paper",
            _table(results),
            _caption("final errors in % as mean ± std over finished seeds (n); difference = ours - paper"),
        )
    )
    verdicts = study_verdicts(uri, experiment)
    if not verdicts.empty:
        view = verdict_view(verdicts)
        sections.append(
            _section(
                "The paper's claims",
                _table(view),
                _caption(f"effect: positive in the claim's direction; interval: {INTERVAL}"),
            )
        )
    curves = error_curves(uri, runs)
    if not curves.empty:
        sections.append(
            _section(
                "Error curves",
                _figure(error_curve_figure(curves, definition.variants or None), 560),  # as the app draws them
                _caption("dashed: training error, bold: test error; band: ± std over seeds"),
            )
        )
    responses = layer_responses(uri, runs)
    if not responses.empty:
        sections.append(
            _section(
                "Layer responses (Fig. 7)",
                _figure(layer_response_figure(responses, definition.variants or None), 720),
                _caption("std of each 3x3 layer's output after BN, before ReLU / addition, on the test set"),
            )
        )
    searched = search_trials(uri, experiment)
    if not searched.empty:
        sections.append(
            _section("Search", _figure(search_figure(searched), 480), _table(searched.head(10)), _caption("best first"))
        )
    sections.append(
        _section(
            "Trials",
            _table(runs[TRIAL_COLUMNS]),
            _caption("each trial's recipe as its run recorded it; the run id opens it in MLflow (mlflow ui)"),
        )
    )
    models = registered_models(uri)
    models = models[models["study"] == experiment].drop(columns=["study"])
    if not models.empty:
        sections.append(_section("Registered models", _table(models)))
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n"
        f'<script type="text/javascript">{get_plotlyjs()}</script>\n</head>\n<body>\n'
        + "\n".join(part for part in sections if part)
        + "\n</body>\n</html>\n"
    )
