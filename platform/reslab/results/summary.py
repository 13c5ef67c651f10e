"""The end-of-study table: per variant, final errors as mean ± std over seeds (n), beside the paper."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class TrialOutcome:
    """How one trial ended."""

    label: str  # the variant's label
    seed: int
    iterations: int  # SGD steps completed
    train_error: float  # final training error (fraction), NaN if it never reported
    test_error: float  # final test error (fraction), NaN if it never reported
    status: str  # "finished", "diverged", "stopped" (early, by ASHA), "interrupted" (resumable) or "failed"
    reason: str = ""  # why a trial diverged, stopped or failed
    params: dict[str, float] = field(default_factory=dict)  # the values a search sampled
    train_error_late: float = math.nan  # mean training error over the reports of the last quarter of training
    test_error_late: float = math.nan  # mean test error over the same reports
    response_std: float = math.nan  # Fig. 7: the mean over 3x3 layers of their response std (NaN: not measured)
    validation_error: float = math.nan  # final error on the held-out validation set (NaN: none held out)
    test_error_10crop: float = math.nan  # final 10-crop test error (ImageNet with ten_crop; NaN otherwise)
    test_error_multiscale: float = math.nan  # final multi-scale test error (Table 4; NaN where not run)
    test_error_10crop_top5: float = math.nan  # their top-5 errors (ImageNet)
    test_error_multiscale_top5: float = math.nan
    # the evidence a verdict weighs (`results/verdicts.py`): how much of the paper's schedule the trial's
    # recipe is (1.0 = all of it; NaN: unknown), how many images its training set had before any hold-out
    # (0: unknown), on which dataset, and its curves: (iteration, error as a fraction) per report
    schedule: float = math.nan
    train_images: int = 0
    dataset: str = ""
    curves: Mapping[str, tuple[tuple[int, float], ...]] = field(default_factory=dict)


def late_mean(iterations: Sequence[int], values: Sequence[float], planned: int) -> float:
    """The mean of `values` reported in the last quarter of `planned` iterations ("over the last part of
    training"): steadier than the final report alone. NaN when none was reported there."""
    late = [v for i, v in zip(iterations, values, strict=True) if i >= 0.75 * planned and math.isfinite(v)]
    return sum(late) / len(late) if late else math.nan


def _mean_std(values: pd.Series) -> tuple[float, float]:
    values = values.dropna()
    if values.empty:
        return math.nan, math.nan
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


# the paper's other final tests, each a column beside the paper's number where the trials ran it (see
# `Study.paper_more`); 10-crop top-1 is the tables' own column (`paper`)
MORE_TESTS = {
    "test_error_10crop_top5": "10-crop top-5 %",
    "test_error_multiscale": "multi-scale %",
    "test_error_multiscale_top5": "multi-scale top-5 %",
}
FINAL_TESTS = ("test_error_10crop", *MORE_TESTS)  # what a trial's final report may add (`Report`)


def summarize(
    outcomes: Sequence[TrialOutcome],
    paper: Mapping[str, float],
    order: Sequence[str],
    paper_more: Mapping[str, Mapping[str, float]] | None = None,
) -> pd.DataFrame:
    """One row per variant (in `order`): errors in percent as mean and std over the finished seeds,
    n, the paper's test error and our mean minus the paper's. Diverged and failed trials are counted
    but never averaged in. Where the trials ran the paper's 10-crop test, its error is a column too and the
    paper (whose tables are 10-crop) is compared with it, not with the centre-crop curve's last point; each
    other final test they ran (`MORE_TESTS`: top-5, Table 4's multi-scale) is a column beside the paper's
    number for it (`paper_more[metric][variant]`)."""
    frame = pd.DataFrame([o.__dict__ for o in outcomes])

    def ran(metric: str) -> bool:
        return not frame.empty and metric in frame and frame[metric].notna().any()

    rows = []
    for label in order:
        trials = frame[frame["label"] == label] if not frame.empty else frame
        finished = trials[trials["status"] == "finished"] if not trials.empty else trials

        def mean_std(metric: str, finished: pd.DataFrame = finished) -> tuple[float, float]:
            return _mean_std(100 * finished[metric]) if len(finished) else (math.nan, math.nan)

        (train_mean, train_std), (test_mean, test_std) = mean_std("train_error"), mean_std("test_error")
        reference = paper.get(label, math.nan)
        row = {
            "variant": label,
            "n": len(finished),
            "train_error_mean": train_mean,
            "train_error_std": train_std,
            "test_error_mean": test_mean,
            "test_error_std": test_std,
            "test_error_best": 100 * finished["test_error"].min() if len(finished) else math.nan,
            "paper_test_error": reference,
            "difference": test_mean - reference,
            "diverged": int((trials["status"] == "diverged").sum()) if len(trials) else 0,
            "failed": int((trials["status"] == "failed").sum()) if len(trials) else 0,
        }
        if ran("test_error_10crop"):
            row["test_error_10crop_mean"], row["test_error_10crop_std"] = mean_std("test_error_10crop")
            row["difference"] = row["test_error_10crop_mean"] - reference
        for metric in MORE_TESTS:
            if ran(metric):
                row[f"{metric}_mean"], row[f"{metric}_std"] = mean_std(metric)
                row[f"paper_{metric}"] = (paper_more or {}).get(metric, {}).get(label, math.nan)
        rows.append(row)
    return pd.DataFrame(rows)


def _pm(mean: float, std: float, n: int) -> str:
    """mean ± std (n); a single run has no spread to show."""
    if math.isnan(mean):
        return "—"
    return f"{mean:.2f} ± {std:.2f} ({n})" if n > 1 else f"{mean:.2f} ({n})"


def _num(value: float, signed: bool = False) -> str:
    return "—" if math.isnan(value) else (f"{value:+.2f}" if signed else f"{value:.2f}")


def paper_table(table: pd.DataFrame) -> pd.DataFrame:
    """The summary as the paper prints it (Table 6): one string per cell, errors in % as mean ± std (n).
    The Markdown summary and the HTML report both render this one table. Columns of tests that did not run
    (10-crop, top-5, multi-scale), of a best-of-seeds with one seed, and of paper numbers there are none of,
    are left out."""
    cells = pd.DataFrame({"variant": table["variant"]})
    cells["train error %"] = [_pm(r.train_error_mean, r.train_error_std, r.n) for r in table.itertuples()]
    cells["test error %"] = [_pm(r.test_error_mean, r.test_error_std, r.n) for r in table.itertuples()]
    if (table["n"] > 1).any():  # best of several seeds, as the paper gives ResNet-110's
        cells["best %"] = [_num(r.test_error_best) if r.n > 1 else "—" for r in table.itertuples()]
    if "test_error_10crop_mean" in table:
        cells["10-crop test error %"] = _pms(table, "test_error_10crop")
    if table["paper_test_error"].notna().any():  # none on a synthetic-data run
        cells["paper %"] = [_num(v) for v in table["paper_test_error"]]
        cells["difference"] = [_num(v, signed=True) for v in table["difference"]]
    for metric, title in MORE_TESTS.items():
        if f"{metric}_mean" in table:
            cells[title] = _pms(table, metric)
            if table[f"paper_{metric}"].notna().any():
                cells[f"paper {title}"] = [_num(v) for v in table[f"paper_{metric}"]]
    cells["diverged"] = [str(v) for v in table["diverged"]]
    cells["failed"] = [str(v) for v in table["failed"]]
    return cells.reset_index(drop=True)


def _pms(table: pd.DataFrame, metric: str) -> list[str]:
    return [_pm(m, sd, n) for m, sd, n in zip(table[f"{metric}_mean"], table[f"{metric}_std"], table["n"], strict=True)]


def to_markdown(table: pd.DataFrame, title: str) -> str:
    """The summary as a Markdown table, errors in % as mean ± std (n) like the paper's Table 6."""
    cells = paper_table(table)
    lines = [f"### {title}", "", "| " + " | ".join(cells.columns) + " |", "|" + " --- |" * len(cells.columns)]
    lines += ["| " + " | ".join(row) + " |" for row in cells.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def response_table(results: Iterable[Any]) -> pd.DataFrame:
    """Fig. 7's data in long form: one row per (variant, seed, layer index) with the response std."""
    rows = []
    for result in results:
        trial, metrics = result.config["trial"], result.metrics or {}
        for layer, std in enumerate(metrics.get("layer_responses") or [], start=1):
            rows.append({"variant": trial["label"], "seed": trial["seed"], "layer": layer, "std": std})
    return pd.DataFrame(rows, columns=["variant", "seed", "layer", "std"])


def responses_markdown(responses: pd.DataFrame, order: Sequence[str]) -> str:
    """Per variant: how many 3x3 layers, and the mean, median and largest response std over them."""
    lines = [
        "### Layer responses (std of each 3x3 layer's output after BN, test set)",
        "",
        "| variant | layers | mean std | median std | max std |",
        "| --- | --- | --- | --- | --- |",
    ]
    for label in order:
        stds = responses.loc[responses["variant"] == label, "std"]
        if len(stds):
            layers = responses.loc[responses["variant"] == label, "layer"].max()
            lines.append(f"| {label} | {layers} | {stds.mean():.4f} | {stds.median():.4f} | {stds.max():.4f} |")
    return "\n".join(lines) + "\n"


SEARCH_COLUMNS = ("iterations", "train_error", "validation_error", "test_error", "status", "reason")


def search_table(outcomes: Sequence[TrialOutcome]) -> pd.DataFrame:
    """Every search trial with its sampled values, best first by validation error (what the search selected
    on; the test error is reported beside it, never ranked on); only finished trials rank as "best"."""
    rows = [
        {
            **o.params,
            "iterations": o.iterations,
            "train_error": 100 * o.train_error,
            "validation_error": 100 * o.validation_error,
            "test_error": 100 * o.test_error,
            "status": o.status,
            "reason": o.reason,
        }
        for o in outcomes
    ]
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["finished"] = table["status"] == "finished"
    return table.sort_values(["finished", "validation_error"], ascending=[False, True]).drop(columns="finished")


def search_markdown(table: pd.DataFrame, title: str) -> str:
    """The search as a Markdown table, best finished trial first."""
    params = [c for c in table.columns if c not in SEARCH_COLUMNS]
    header = [*params, "iterations", "train error %", "validation error %", "test error %", "status"]
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for row in table.to_dict("records"):
        values = [f"{row[p]:.3g}" for p in params]
        errors = [_num(row[k]) for k in ("train_error", "validation_error", "test_error")]
        values += [str(row["iterations"]), *errors, row["status"]]
        lines.append("| " + " | ".join(values) + " |")
    finished = table[table["status"] == "finished"]
    if len(finished):
        best = finished.iloc[0]
        chosen = ", ".join(f"{p}={best[p]:.3g}" for p in params)
        lines += [
            "",
            f"Best finished trial: {chosen} (validation error {best['validation_error']:.2f} %, "
            f"test error {best['test_error']:.2f} %); selected on the validation split, never on the test set",
        ]
    return "\n".join(lines) + "\n"
