"""Plotly figures drawn the way the paper draws them (Figs. 1, 4, 6): iterations on x, error % on y,
training error thin and dashed, test error bold, one colour per configuration."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative

from .queries import seed_bands

DASH = {"train_error": "dash", "test_error": "solid"}
WIDTH = {"train_error": 1.2, "test_error": 2.8}
NAME = {"train_error": "train", "test_error": "test"}


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
                            name=f"{variant} seed {seed} {NAME[metric]}",
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
                        name=f"{variant} {NAME[metric]} ±std",
                    )
                )
            figure.add_trace(
                go.Scatter(
                    x=band["iteration"],
                    y=band["mean"],
                    customdata=band[["std", "n"]],
                    mode="lines",
                    name=f"{variant} {NAME[metric]}",
                    legendgroup=variant,
                    line={"color": colour, "dash": DASH[metric], "width": WIDTH[metric]},
                    hovertemplate="iter %{x}<br>error %{y:.2f}% ± %{customdata[0]:.2f} (n=%{customdata[1]})"
                    "<extra>%{fullData.name}</extra>",
                )
            )
    figure.update_layout(
        title=title,
        xaxis_title="iterations",
        yaxis_title="error (%)",
        yaxis_type="log" if log_y else "linear",
        hovermode="closest",
        legend={"groupclick": "togglegroup"},
        margin={"t": 40 if title else 10},
    )
    return figure
