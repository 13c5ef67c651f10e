"""reslab's results dashboard: `reslab dashboard` or `streamlit run dashboard/app.py`.

This file only lays out widgets; the queries and figures are functions in `reslab.dashboard`.
The store comes from $RESLAB_TRACKING_URI (set by `reslab dashboard --tracking-uri`), else
$MLFLOW_TRACKING_URI, else the local `runs/mlflow.db`.
"""

from __future__ import annotations

import os

import streamlit as st

from reslab.dashboard import (
    StoreUnavailable,
    error_curve_figure,
    error_curves,
    list_studies,
    results_table,
    study_definition,
    trial_runs,
)
from reslab.study.summary import to_markdown
from reslab.tracking import resolve_tracking_uri

REFRESH_S = 10  # cached queries expire this fast, so a running study's views follow it

st.set_page_config(page_title="reslab", layout="wide")
uri = resolve_tracking_uri(os.environ.get("RESLAB_TRACKING_URI") or None)


@st.cache_data(ttl=REFRESH_S, show_spinner=False)
def studies(uri: str):
    return list_studies(uri)


@st.cache_data(ttl=REFRESH_S, show_spinner=False)
def runs_and_curves(uri: str, experiment: str):
    runs = trial_runs(uri, experiment)
    return runs, error_curves(uri, runs), study_definition(uri, experiment)


st.title("reslab")
try:
    table = studies(uri)
except StoreUnavailable as error:
    st.error(f"Cannot read the tracking store {uri}. {error}")
    st.stop()

if table.empty:
    st.info("No studies yet in this store. Start one, for example:")
    st.code("python studies/plain_vs_residual.py --profile smoke", language="bash")
    st.caption(f"store: {uri}")
    st.stop()

experiment = st.sidebar.selectbox("Study", table["study"].tolist())
st.sidebar.caption(f"store: {uri}")
runs, curves, definition = runs_and_curves(uri, experiment)
if st.sidebar.button("Refresh now"):
    st.cache_data.clear()
    st.rerun()

studies_tab, curves_tab, table_tab = st.tabs(["Studies", "Error curves", "Tables"])

with studies_tab:
    st.subheader("Studies")
    st.dataframe(table, hide_index=True, use_container_width=True)

with curves_tab:
    st.subheader(f"{experiment}: {definition.title}" if definition.title else experiment)
    variants = definition.variants or sorted(runs["variant"].unique())
    chosen = st.multiselect("Configurations", variants, default=variants)
    single = st.toggle("Single seeds", value=False)
    log_y = st.toggle("Log scale", value=False)
    if curves.empty:
        st.info("No curves yet: the trials have not reported.")
    else:
        figure = error_curve_figure(curves, chosen, single_seeds=single, log_y=log_y)
        st.plotly_chart(figure, use_container_width=True)
        st.caption("dashed: training error, bold: test error; band: ± std over seeds")

with table_tab:
    results = results_table(runs, definition)
    st.markdown(to_markdown(results, f"{definition.title or experiment} — profile {definition.profile or '?'}"))
    st.download_button("Download CSV", results.to_csv(index=False), f"{experiment}.csv", "text/csv")
    st.subheader("Trials")
    st.dataframe(runs.drop(columns=["run_id"]), hide_index=True, use_container_width=True)
