"""A resume writes where it says: the store a restored experiment tracks into is the one its console names,
and a refused resume writes nothing to either store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import write_study

SETTINGS = {"iterations": 8, "eval_every": 4, "batch_size": 16}


def run(folder: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return subprocess.run(
        [sys.executable, str(folder / "where.py"), "--storage", str(folder / "st"), *args],
        cwd=folder, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def run_counts(uri: str) -> tuple[int, int]:
    """Launch runs and trial runs of the study in the store at `uri`."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("where-smoke")
    runs = client.search_runs([experiment.experiment_id]) if experiment else []
    launches = sum(r.data.tags.get("reslab.launch") == "true" for r in runs)
    return launches, sum("-seed" in r.info.run_name for r in runs)


@pytest.mark.slow
def test_a_resume_naming_another_store_is_refused_even_without_launch_json(tmp_path: Path) -> None:
    write_study(tmp_path, "where", "grid(model=['cifar_resnet20', 'cifar_plain20'])", SETTINGS)
    first = run(tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    store = f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"
    assert run_counts(store) == (1, 2)

    other = tmp_path / "other.db"
    record = tmp_path / "st" / "where-smoke" / "launch.json"
    kept = record.read_text()
    for present in (True, False):  # with launch.json the refusal comes before Ray; without, after the restore
        if not present:
            record.unlink()
        refused = run(tmp_path, "--resume", "--tracking-uri", f"sqlite:///{other}")
        assert refused.returncode == 2, refused.stdout + refused.stderr[-3000:]
        assert f"was launched tracking into {store}, but this run names sqlite:///{other}" in refused.stderr
        assert f"tracking: sqlite:///{other}" not in refused.stdout  # never printed as where it writes
        assert not other.exists()  # nothing written there
        assert run_counts(store) == (1, 2)  # and no empty launch run in the launch's own store
    record.write_text(kept)

    again = run(tmp_path, "--resume")
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"tracking: {store}" in again.stdout
    assert run_counts(store) == (2, 2)  # the resume is a launch of its own; the trials keep their runs
