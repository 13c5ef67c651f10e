"""A study's identity in storage: its experiment's name and a fingerprint of what its trials train, so a
restore never silently continues a different grid."""

from __future__ import annotations

import hashlib
import itertools
import json
from typing import Any

from ..training.config import RUNTIME_FIELDS
from .spec import Study, Trial, variant_label


def experiment_name(study: Study, profile: str) -> str:
    return f"{study.name}-{profile}"


def grid_fingerprint(trials: list[Trial], study: Study, profile: str) -> str:
    """A hash of what the trial grid trains (and the search), so a restore never silently continues a different
    grid; how it runs (data folder, device, precision, DDP workers) is not part of it."""
    return _fingerprint([t.config.trained() for t in trials], study, profile)


# config fields added after studies were first fingerprinted, with the default an older experiment trained with
NEW_FIELDS = {"validation_seed": 0, "multiscale": False}


def earlier_fingerprints(trials: list[Trial], study: Study, profile: str) -> set[str]:
    """The fingerprints earlier versions of reslab wrote for this same grid, so that their experiments still
    restore: of the whole config (before how-it-runs was left out), with a residual net's default shortcut
    as None (before the config spelled it out), and without fields added since at their defaults."""
    named = {variant_label(v) for v in study.variants if {**study.settings, **v}.get("shortcut")}
    found = set()
    for spelled, current in itertools.product((True, False), (True, False)):
        configs = [
            {**t.config.to_dict(), **({} if spelled or t.label in named else {"shortcut": None})} for t in trials
        ]
        if not current:
            configs = [{k: v for k, v in c.items() if NEW_FIELDS.get(k, object()) != v} for c in configs]
        found.add(_fingerprint(configs, study, profile))
        found.add(
            _fingerprint([{k: v for k, v in c.items() if k not in RUNTIME_FIELDS} for c in configs], study, profile)
        )
    return found


def _fingerprint(configs: list[dict[str, Any]], study: Study, profile: str) -> str:
    search = None if study.search is None else [repr(study.search), study.search.samples.get(profile)]
    blob = json.dumps([configs, search, study.layer_responses], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
