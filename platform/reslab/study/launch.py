"""What a launch records about itself: the experiment's name, a fingerprint of its trial grid (so a restore
never silently continues a different one) and its provenance and definition."""

from __future__ import annotations

import hashlib
import itertools
import json
import sys
from pathlib import Path
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


def source_state(source: Path) -> dict[str, str]:
    """The commit of reslab's own source (not of the working directory), whether the tree differed from it
    (uncommitted edits or new files: the commit alone does not say what ran) and a hash of that difference, so
    two launches from the same edited tree can be told to match. "unknown" outside a git checkout."""
    import subprocess

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(source), *args], capture_output=True, check=False, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.decode(errors="replace") if done.returncode == 0 else None

    commit = (git("rev-parse", "HEAD") or "").strip()
    if not commit:
        return {"git_commit": "unknown", "git_dirty": "unknown"}
    status = git("status", "--porcelain", "--untracked-files=all") or ""
    diff = (git("diff", "HEAD") or "") + status
    if not status.strip():
        return {"git_commit": commit, "git_dirty": "false"}
    return {"git_commit": commit, "git_dirty": "true", "git_diff_sha256": hashlib.sha256(diff.encode()).hexdigest()}


def launch_record(study: Study, profile: str, trials: list[Trial]) -> dict[str, Any]:
    """What a launch records about itself: provenance tags (command, commit, versions) and the study's
    definition (variant order, the paper's numbers, every trial's config). MLflow's parent run carries
    both; a copy beside grid.json lets `reslab tracking sync` rebuild them into a store that lost them."""
    import platform as python_platform
    from importlib.metadata import version

    import torch

    from .. import __version__

    tags = {
        **source_state(Path(__file__).resolve().parent),
        "profile": profile,
        "reslab_version": __version__,
        "torch_version": torch.__version__,
        "ray_version": version("ray"),
        "mlflow_version": version("mlflow"),
        "python_version": python_platform.python_version(),
        "command": " ".join(sys.argv),
        "study": study.name,
    }
    definition = {
        "study": study.name,
        "title": study.title,
        "profile": profile,
        "variants": [variant_label(v) for v in study.variants],  # the order the paper's tables use
        "paper": dict(study.paper),  # the paper's test error (%) by variant, for tables beside ours
        "paper_more": {m: dict(by) for m, by in study.paper_more.items()},  # top-5, Table 4: metric -> variant
        "metric": study.metric,
        "trials": [{"label": t.label, "seed": t.seed, "config": t.config.to_dict()} for t in trials],
    }
    return {"tags": tags, "definition": definition}
