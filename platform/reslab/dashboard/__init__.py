"""The results dashboard's queries (MLflow -> DataFrames) and figures (Plotly), importable and tested;
`app.py` (the Streamlit page, shipped in the package) only lays them out."""

from pathlib import Path

from .figures import error_curve_figure, layer_response_figure, search_figure
from .queries import (
    StoreUnavailable,
    StudyDefinition,
    error_curves,
    layer_responses,
    list_studies,
    registered_models,
    results_table,
    search_trials,
    seed_bands,
    study_definition,
    trial_counts,
    trial_runs,
)
from .scorecard import scorecard, scorecard_markdown, study_verdicts

APP = Path(__file__).with_name("app.py")  # the Streamlit page `reslab dashboard` serves

__all__ = [
    "APP",
    "StoreUnavailable",
    "StudyDefinition",
    "error_curve_figure",
    "error_curves",
    "layer_response_figure",
    "layer_responses",
    "list_studies",
    "registered_models",
    "results_table",
    "scorecard",
    "scorecard_markdown",
    "search_figure",
    "search_trials",
    "seed_bands",
    "study_definition",
    "study_verdicts",
    "trial_counts",
    "trial_runs",
]
