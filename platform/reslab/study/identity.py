"""A study's identity in storage: its experiment's name, each trial's identity and the fingerprint of the
grid, so that a restore never silently continues a different grid.

A trial's identity hashes only the trained values that differ from their defaults (plus the study, the
profile and the seed): adding a defaulted field to the config, which trains every existing trial as before,
changes no identity, and no experiment refuses to resume for it. The other side of that rule: a default is
never changed in place (that would train differently under the same identity); a new behaviour is a new
field or a new value.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import MISSING, Field, fields, is_dataclass
from typing import Any

from ..training.config import RUNTIME_FIELDS
from .spec import Study, Trial


def experiment_name(study: Study, profile: str) -> str:
    return f"{study.name}-{profile}"


def changed_values(config: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """A config dataclass's values that differ from their fields' defaults, nested configs (the recipe) field
    by field; a field without a default is always there."""
    changed = {}
    for item in fields(config):
        if item.name in skip:
            continue
        value = getattr(config, item.name)
        if is_dataclass(value):
            if nested := changed_values(value):
                changed[item.name] = nested
        elif value != _default(item):
            changed[item.name] = value
    return changed


def _default(item: Field) -> Any:
    if item.default is not MISSING:
        return item.default
    if item.default_factory is not MISSING:
        return item.default_factory()
    return MISSING  # required: never equal to a value


def trial_identity(trial: Trial, study: Study, profile: str) -> str:
    """What one trial trains, as 16 hex digits: how it runs (RUNTIME_FIELDS) and defaulted fields left out."""
    trained = changed_values(trial.config, skip=(*RUNTIME_FIELDS, "seed"))
    return _digest([study.name, profile, trial.seed, trained, study.layer_responses])


def grid_fingerprint(trials: list[Trial], study: Study, profile: str) -> str:
    """The trials' identities as a set, and the search (its space and samples on this profile)."""
    search = None if study.search is None else [repr(study.search), study.search.samples.get(profile)]
    return _digest([sorted(trial_identity(t, study, profile) for t in trials), search])


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]
