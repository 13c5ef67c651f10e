"""Plotly figures drawn the way the paper draws them (Figs. 1, 4, 6): iterations on x, error % on y,
training error thin and dashed, test error bold, one colour per configuration.

Labels come from a store, which anyone with write access fills: they are HTML-escaped, since Plotly renders
a subset of HTML in legends and titles (links and styled spans among it)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from .queries import seed_bands

DASH = {"train_error": "dash", "test_error": "solid"}
WIDTH = {"train_error": 1.2, "test_error": 2.8}
NAME = {"train_error": "train", "test_error": "test"}
SEARCH_RESULT_COLUMNS = (
    "status", "iterations", "planned", "validation_error", "test_error", "train_error", "run_name", "complete"
)  # fmt: skip


def _rgba(colour: str, alpha: float) -> str:
    colour = colour.lstrip("#")
    red, green, blue = (int(colour[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgba({red},{green},{blue},{alpha})"


def error_curve_figure(
    curves: pd.DataFrame,
    variants: Sequence[str] | None = None,
    *,
    single_seeds: bool = False,
    log_y: bool = False,
    title: str = "",
) -> go.Figure:
    """Train (dashed) and test (bold) error curves per configuration: the mean over seeds with a ±std
    band, or every seed as its own line when `single_seeds`. Hover shows the exact values."""
    figure = go.Figure()
    chosen = list(variants) if variants is not None else sorted(curves["variant"].unique())
    palette = qualitative.Plotly
    bands = seed_bands(curves[curves["variant"].isin(chosen)])
    for number, variant in enumerate(chosen):
        colour = palette[number % len(palette)]
        for metric in ("train_error", "test_error"):
            if single_seeds:
                lines = curves[(curves["variant"] == variant) & (curves["metric"] == metric)]
                for seed, line in lines.groupby("seed"):
                    figure.add_trace(
                        go.Scatter(
                            x=line["iteration"],
                            y=line["error"],
                            mode="lines",
                            name=f"{escape(variant)} seed {seed} {NAME[metric]}",
                            legendgroup=variant,
                            line={"color": colour, "dash": DASH[metric], "width": WIDTH[metric]},
                            hovertemplate="iter %{x}<br>error %{y:.2f}%<extra>%{fullData.name}</extra>",
                        )
                    )
                continue
            band = bands[(bands["variant"] == variant) & (bands["metric"] == metric)]
            if band.empty:
                continue
            if (band["n"] > 1).any():  # the ±std band over seeds, drawn under the mean
                figure.add_trace(
                    go.Scatter(
                        x=pd.concat([band["iteration"], band["iteration"][::-1]]),
                        y=pd.concat([band["mean"] + band["std"], (band["mean"] - band["std"])[::-1]]),
                        fill="toself",
                        fillcolor=_rgba(colour, 0.15),
                        line={"width": 0},
                        hoverinfo="skip",
                        showlegend=False,
                        legendgroup=variant,
                        name=f"{escape(variant)} {NAME[metric]} ±std",
                    )
                )
            figure.add_trace(
                go.Scatter(
                    x=band["iteration"],
                    y=band["mean"],
                    customdata=band[["std", "n"]],
                    mode="lines",
                    name=f"{escape(variant)} {NAME[metric]}",
                    legendgroup=variant,
                    line={"color": colour, "dash": DASH[metric], "width": WIDTH[metric]},
                    hovertemplate="iter %{x}<br>error %{y:.2f}% ± %{customdata[0]:.2f} (n=%{customdata[1]})"
                    "<extra>%{fullData.name}</extra>",
                )
            )
    figure.update_layout(
        title=escape(title),
        xaxis_title="iterations",
        yaxis_title="error (%)",
        yaxis_type="log" if log_y else "linear",
        hovermode="closest",
        legend=LEGEND,
        margin={"t": 40 if title else 10},
    )
    figure.update_xaxes(rangemode="tozero")  # from iteration 0, not from the first evaluation
    return figure


# below the plot, where Plotly's toolbar (top right) cannot cover it
LEGEND = {"groupclick": "togglegroup", "orientation": "h", "yanchor": "top", "y": -0.18, "xanchor": "left", "x": 0}


def metric_figure(
    curves: pd.DataFrame, label: str, variants: Sequence[str] | None = None, *, single_seeds: bool = False
) -> go.Figure:
    """Any other logged curve (`queries.metric_curves`): the mean over seeds per configuration, or every
    seed as its own line, with `label` on the y axis."""
    figure = go.Figure()
    chosen = list(variants) if variants is not None else sorted(curves["variant"].unique())
    palette = qualitative.Plotly
    for number, variant in enumerate(chosen):
        lines = curves[curves["variant"] == variant]
        groups = (
            list(lines.groupby("seed"))
            if single_seeds
            else [("", lines.groupby("iteration", as_index=False)["value"].mean())]
        )
        for seed, line in groups:
            if line.empty:
                continue
            name = f"{escape(variant)} seed {seed}" if single_seeds else escape(variant)
            figure.add_trace(
                go.Scatter(
                    x=line["iteration"], y=line["value"], mode="lines", name=name, legendgroup=variant,
                    line={"color": palette[number % len(palette)]},
                    hovertemplate="iter %{x}<br>%{y:.4g}<extra>%{fullData.name}</extra>",
                )
            )  # fmt: skip
    figure.update_layout(
        xaxis_title="iterations", yaxis_title=escape(label), hovermode="closest", legend=LEGEND, margin={"t": 10}
    )
    figure.update_xaxes(rangemode="tozero")
    return figure


def layer_response_figure(responses: pd.DataFrame, variants: Sequence[str] | None = None) -> go.Figure:
    """Fig. 7: the std of each 3x3 layer's response (mean over seeds), by layer index (top) and sorted
    by magnitude (bottom); plain nets dashed, residual nets solid."""
    from plotly.subplots import make_subplots

    figure = make_subplots(rows=2, cols=1, subplot_titles=("by layer index", "sorted by magnitude"))
    chosen = list(variants) if variants is not None else sorted(responses["variant"].unique())
    palette = qualitative.Plotly
    for number, variant in enumerate(chosen):
        stds = responses[responses["variant"] == variant].groupby("layer")["std"].mean()
        if stds.empty:
            continue
        line = {"color": palette[number % len(palette)], "dash": "dash" if "plain" in variant else "solid"}
        ranked = stds.sort_values(ascending=False).to_numpy()
        figure.add_trace(
            go.Scatter(
                x=stds.index,
                y=stds.to_numpy(),
                mode="lines+markers",
                name=escape(variant),
                legendgroup=variant,
                line=line,
            ),
            row=1,
            col=1,
        )
        figure.add_trace(
            go.Scatter(
                x=list(range(1, len(ranked) + 1)), y=ranked, mode="lines", name=escape(variant), legendgroup=variant,
                showlegend=False, line=line,
            ),
            row=2,
            col=1,
        )  # fmt: skip
    figure.update_xaxes(title_text="layer index (original)", row=1, col=1)
    figure.update_xaxes(title_text="layer index (sorted by magnitude)", row=2, col=1)
    figure.update_yaxes(title_text="std")
    figure.update_layout(height=700, legend={"groupclick": "togglegroup"})
    return figure


def search_figure(trials: pd.DataFrame) -> go.Figure:
    """Parallel coordinates of a search: one axis per sampled value (log10, as sampled), then the
    iterations reached, the final validation error (what the search selected on) and test error; lines coloured
    by the validation error (by the test error for a search that held no validation set out)."""
    sampled = [c for c in trials.columns if c not in SEARCH_RESULT_COLUMNS]
    dimensions = [
        {"label": f"log10 {escape(name)}", "values": trials[name].map(math.log10)} if (trials[name] > 0).all()
        else {"label": escape(name), "values": trials[name]}
        for name in sampled
    ]  # fmt: skip
    dimensions.append({"label": "iterations", "values": trials["iterations"]})
    validated = "validation_error" in trials and trials["validation_error"].notna().any()
    if validated:
        dimensions.append({"label": "validation error (%)", "values": trials["validation_error"]})
    dimensions.append({"label": "test error (%)", "values": trials["test_error"]})
    ranked, title = ("validation_error", "validation %") if validated else ("test_error", "test %")
    line = {"color": trials[ranked], "colorscale": "Viridis", "showscale": True, "colorbar": {"title": title}}
    return go.Figure(go.Parcoords(line=line, dimensions=dimensions))
