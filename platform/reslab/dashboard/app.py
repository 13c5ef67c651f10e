"""reslab's results dashboard: `reslab dashboard`, or `streamlit run dashboard/app.py` in a checkout.

This file only lays out widgets; the queries and figures are functions in `reslab.dashboard`.
The store comes from $RESLAB_TRACKING_URI (set by `reslab dashboard --tracking-uri`), else
$MLFLOW_TRACKING_URI, else the local `runs/mlflow.db`.
"""

from __future__ import annotations

import os
import time

import streamlit as st

from reslab.dashboard import (
    StoreUnavailable,
    error_curve_figure,
    error_curves,
    layer_response_figure,
    layer_responses,
    list_studies,
    registered_models,
    results_table,
    scorecard,
    search_figure,
    search_trials,
    study_definition,
    study_verdicts,
    trial_counts,
    trial_runs,
)
from reslab.dashboard.figures import metric_figure
from reslab.dashboard.queries import MORE_CURVES, metric_curves
from reslab.dashboard.report import study_report
from reslab.dashboard.scorecard import tally, verdict_view
from reslab.dashboard.text import markdown_text
from reslab.results.summary import FINAL_TESTS, paper_table
from reslab.tracking import TrackingUnavailable, prepare_store, resolve_tracking_uri

PAPER_CURVES = "train and test error (the paper's figures)"
REFRESH_S = 10  # cached queries expire this fast, so a running study's views follow it
VERDICT_NOTE = (
    "effect: positive in the claim's direction (errors in points); interval: 95 % Welch t over seeds; adjusted: "
    "at the level Holm's step-down tested the claim (familywise 5 %). A verdict needs the paper's full schedule, "
    "the full training set and 2+ seeds per arm; anything less is indicative and never counted"
)

st.set_page_config(page_title="reslab", layout="wide")
try:
    uri = prepare_store(resolve_tracking_uri(os.environ.get("RESLAB_TRACKING_URI") or None))
except (TrackingUnavailable, ValueError) as error:  # a damaged store, a URI with no store: say so, once
    st.error(markdown_text(error))
    st.stop()


@st.cache_data(ttl=REFRESH_S, show_spinner=False)
def studies(uri: str):
    return list_studies(uri)


st.title("reslab")
try:
    table = studies(uri)
except StoreUnavailable as error:
    st.error(markdown_text(f"Cannot read the tracking store {uri}. {error}"))
    st.stop()

if table.empty:
    st.info("No studies yet in this store. Start one, for example:")
    st.code("python studies/plain_vs_residual.py --profile smoke", language="bash")
    st.caption(markdown_text(f"store: {uri}"))
    st.stop()

experiment = st.sidebar.selectbox("Study", table["study"].tolist())
running = int(table.loc[table["study"] == experiment, "running"].iloc[0]) > 0
live = st.sidebar.toggle(
    f"Live (every {REFRESH_S} s)",
    value=running,
    help="redraw the views on their own while trials run (on by default when the study has running trials)",
)
st.sidebar.download_button(
    "Download report (HTML)",
    lambda: study_report(uri, experiment),  # built on click, not on every rerun: it inlines plotly.js (4.8 MB)
    f"{experiment}.html",
    "text/html",
    on_click="ignore",
    help="this study's tables and figures in one self-contained file that opens offline",
)
if st.sidebar.button("Refresh now"):
    st.cache_data.clear()
    st.rerun()
st.sidebar.caption(markdown_text(f"store: {uri}"))


@st.cache_data(ttl=REFRESH_S, show_spinner=False)
def study_data(uri: str, experiment: str):
    """The study's runs, curves, definition and Fig. 7 data, read together: one runs query per refresh."""
    runs = trial_runs(uri, experiment)
    return runs, error_curves(uri, runs), study_definition(uri, experiment), layer_responses(uri, runs)


@st.cache_data(ttl=REFRESH_S, show_spinner=False)
def models(uri: str):
    return registered_models(uri)


@st.cache_data(ttl=REFRESH_S, show_spinner=False)
def verdicts(uri: str, experiment: str):
    return study_verdicts(uri, experiment)


@st.cache_data(ttl=REFRESH_S, show_spinner=False)
def card(uri: str):
    return scorecard(uri)


@st.cache_data(ttl=REFRESH_S, show_spinner=False)
def searched(uri: str, experiment: str):
    return search_trials(uri, experiment)


def draw_views() -> None:
    """Every view of the chosen study, from the cached queries."""
    runs, curves, definition, responses = study_data(uri, experiment)
    latest = int(curves["iteration"].max()) if not curves.empty else 0
    st.caption(
        f"{trial_counts(runs)} · latest report at iteration {latest:,} · "
        f"read at {time.strftime('%H:%M:%S')}" + (f" · live, every {REFRESH_S} s" if live else "")
    )
    trials = searched(uri, experiment)
    # this study's views first, those it has only (Fig. 7, a search); then the store's, named as such
    names = ["Error curves", "Tables", "Verdicts"]
    names += ["Layer responses"] if not responses.empty else []
    names += ["Search"] if not trials.empty else []
    tabs = dict(zip([*names, "Store: studies", "Store: models", "Store: scorecard"], st.tabs(
        [*names, "Store: studies", "Store: models", "Store: scorecard"]), strict=True))  # fmt: skip
    curves_tab, table_tab, verdicts_tab = tabs["Error curves"], tabs["Tables"], tabs["Verdicts"]
    studies_tab, models_tab, card_tab = tabs["Store: studies"], tabs["Store: models"], tabs["Store: scorecard"]

    with studies_tab:
        st.subheader("Studies in this store")
        st.dataframe(studies(uri), hide_index=True, width="stretch")

    with curves_tab:
        st.subheader(markdown_text(f"{experiment}: {definition.title}" if definition.title else experiment))
        variants = definition.variants or sorted(runs["variant"].unique())
        chosen = st.multiselect("Configurations", variants, default=variants)
        shown = st.selectbox("Curve", [PAPER_CURVES, *MORE_CURVES.values()])
        single = st.toggle("Single seeds", value=False)
        log_y = st.toggle("Log scale", value=False, disabled=shown != PAPER_CURVES)
        if curves.empty:
            st.info("No curves yet: the trials have not reported.")
        elif shown == PAPER_CURVES:
            figure = error_curve_figure(curves, chosen, single_seeds=single, log_y=log_y)
            st.plotly_chart(figure, width="stretch")
            st.caption("dashed: training error, bold: test error; band: ± std over seeds")
        else:
            metric = next(key for key, label in MORE_CURVES.items() if label == shown)
            other = metric_curves(uri, runs, metric)
            if other.empty:
                st.info(f"No run of this study logged {shown} (validation error: only with a validation split).")
            else:
                st.plotly_chart(metric_figure(other, shown, chosen, single_seeds=single), width="stretch")
                st.caption("the mean over seeds per configuration (Single seeds: one line each)")

    with table_tab:
        results = results_table(runs, definition)
        st.subheader(markdown_text(f"{definition.title or experiment} — profile {definition.profile or '?'}"))
        st.dataframe(paper_table(results), hide_index=True, width="stretch")
        st.download_button("Download CSV", results.to_csv(index=False), f"{experiment}.csv", "text/csv")
        st.subheader("Trials")
        finals = [c for c in FINAL_TESTS if runs[c].isna().all()]  # tests the trials did not run
        hidden = ["artifact_uri", *finals] + ([] if runs["mlflow"].astype(bool).any() else ["mlflow"])
        st.dataframe(
            runs.drop(columns=hidden),
            hide_index=True,
            width="stretch",
            column_config={"mlflow": st.column_config.LinkColumn("MLflow run", display_text="open")},
        )
        if not runs["mlflow"].astype(bool).any():
            st.caption(markdown_text(f"each run in MLflow's own UI: mlflow ui --backend-store-uri {uri}"))

    with verdicts_tab:
        claims = verdicts(uri, experiment)
        if claims.empty:
            st.info("No verdicts: this study declares no claims of the paper, or has not ended yet.")
        else:
            st.subheader("The paper's claims, checked")
            st.dataframe(verdict_view(claims), hide_index=True, width="stretch")
            st.caption(VERDICT_NOTE)

    if "Layer responses" in tabs:
        with tabs["Layer responses"]:
            st.plotly_chart(layer_response_figure(responses, definition.variants or None), width="stretch")
            st.caption("std of each 3x3 layer's output after BN, before ReLU / addition, on the test set (Fig. 7)")

    if "Search" in tabs:
        with tabs["Search"]:
            st.plotly_chart(search_figure(trials), width="stretch")
            st.caption("one line per trial; ASHA stops the trials that fall behind before their planned iterations")
            st.subheader("Best trials")
            st.dataframe(trials.head(10), hide_index=True, width="stretch")

    with models_tab:
        registered = models(uri)
        if registered.empty:
            st.info("No registered models yet: a finished study registers the best net of each configuration.")
        else:
            st.dataframe(registered, hide_index=True, width="stretch")
            choice = st.selectbox("Pull", registered["pull"].tolist())
            st.code(choice, language="bash")

    with card_tab:
        table = card(uri)
        if table.empty:
            st.info("No verdicts in this store yet: a study records them when it ends.")
        else:
            st.subheader("What has been reproduced")
            st.caption(tally(table))
            view = verdict_view(table).assign(study=table["study"], profile=table["profile"])
            st.dataframe(view, hide_index=True, width="stretch")
            st.caption(VERDICT_NOTE)


@st.fragment(run_every=REFRESH_S if live else None)
def views() -> None:
    """In live mode this part alone reruns on a timer; the cached queries (10 s TTL) bring the new reports."""
    try:
        draw_views()
    except StoreUnavailable as error:
        message = f"The tracking store {uri} stopped answering; the views come back when it does. {error}"
        st.error(markdown_text(message))


views()
