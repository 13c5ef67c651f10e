"""The results dashboard's queries (MLflow -> DataFrames) and figures (Plotly), importable and tested;
`dashboard/app.py` only lays them out in Streamlit."""

from .figures import error_curve_figure
from .queries import (
    StoreUnavailable,
    StudyDefinition,
    error_curves,
    list_studies,
    results_table,
    seed_bands,
    study_definition,
    trial_runs,
)

__all__ = [
    "StoreUnavailable",
    "StudyDefinition",
    "error_curve_figure",
    "error_curves",
    "list_studies",
    "results_table",
    "seed_bands",
    "study_definition",
    "trial_runs",
]
