"""Studies: an ablation declared as variants x seeds, run as Ray Tune trials, summarised beside the paper."""

from .cli import main
from .runner import StudyRun, run_study
from .spec import PROFILES, Profile, Search, Study, Trial, grid, variant_label

__all__ = ["PROFILES", "Profile", "Search", "Study", "StudyRun", "Trial", "grid", "main", "run_study", "variant_label"]
