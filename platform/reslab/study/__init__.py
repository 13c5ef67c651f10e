"""What to run: a study (an ablation declared as variants x seeds under a profile), its claims, its plan and
its identity in storage. Imports neither Ray nor the launch machinery, so a study file validates anywhere."""

from __future__ import annotations

from ..results.claims import Claim, falls_with
from .spec import PROFILES, Profile, Search, Study, Trial, grid, variant_label

__all__ = ["PROFILES", "Claim", "Profile", "Search", "Study", "Trial", "falls_with", "grid", "variant_label"]
