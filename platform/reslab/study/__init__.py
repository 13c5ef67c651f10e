"""Studies: an ablation declared as variants x seeds, run as Ray Tune trials, summarised beside the paper.

The names below load on first use (PEP 562), so that `reslab.study.summary` (tables, pandas only) can be
read by the dashboard without importing Ray and torch through the runner.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .claims import Claim, falls_with
    from .cli import main
    from .runner import StudyRun, run_study
    from .spec import PROFILES, Profile, Search, Study, Trial, grid, variant_label

_HOMES = {
    "main": ".cli",
    "Claim": ".claims",
    "falls_with": ".claims",
    "StudyRun": ".runner",
    "run_study": ".runner",
    **dict.fromkeys(("PROFILES", "Profile", "Search", "Study", "Trial", "grid", "variant_label"), ".spec"),
}

__all__ = [
    "PROFILES", "Claim", "Profile", "Search", "Study", "StudyRun", "Trial", "falls_with", "grid", "main", "run_study",
    "variant_label",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(_HOMES[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
