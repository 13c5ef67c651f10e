"""What a launch records about itself: its provenance (commit, versions, command) and the study's definition."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

from ..study import Study, Trial, variant_label


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
    # MLflow's own names for where a run came from: its UI's Source column and its git link read these
    tags |= {"mlflow.source.name": sys.argv[0] or "reslab", "mlflow.source.type": "LOCAL"}
    if tags["git_commit"] != "unknown":
        tags["mlflow.source.git.commit"] = tags["git_commit"]
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
