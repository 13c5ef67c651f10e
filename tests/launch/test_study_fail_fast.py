"""A wrong data folder is refused before Ray starts: the shipped study scripts, run as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from reslab.data import DatasetNotFoundError, check_data_dir, detect_dataset


def study(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
    script = REPO / "studies" / "shortcut_ablation.py"
    return subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, timeout=120, cwd=cwd, env=env
    )


@pytest.mark.parametrize(
    ("args", "names"),
    [
        # a CIFAR-10 folder given to the ImageNet version (no --dataset): not 4 trials failing 4 times each
        (("--profile", "smoke", "--data-dir", "{subset}"), ["is not imagenet (it holds cifar10)", "train/ and val/"]),
        (("--data-dir", "/nonexistent/dir", "--profile", "quick"), ["/nonexistent/dir does not exist", "train/"]),
        (
            ("--dataset", "cifar10", "--data-dir", "/nonexistent/dir", "--profile", "quick"),
            ["/nonexistent/dir does not exist", "data_batch_1"],
        ),
        (("--dataset", "cifar10", "--profile", "quick", "--data-dir", "{empty}", "--dry-run"), ["neither layout"]),
    ],
)
def test_a_wrong_data_folder_exits_2_with_one_message_before_ray_starts(
    args: tuple[str, ...], names: list[str], cifar_subset: Path, tmp_path: Path
) -> None:
    (tmp_path / "empty").mkdir()
    args = tuple(a.format(subset=cifar_subset, empty=tmp_path / "empty") for a in args)
    done = study(*args, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    message = done.stderr.strip()
    assert "Traceback" not in message and len(message.splitlines()) == 1, message
    assert "--dataset chooses the study's data: imagenet, cifar10" in message
    for name in names:
        assert name in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]  # no runs/, no store, no Ray session
    assert "trials on" not in done.stdout  # Ray never started


def test_layouts_are_told_apart(cifar_subset: Path, tiny_imagenet: Path, tmp_path: Path) -> None:
    assert detect_dataset(cifar_subset) == "cifar10"
    assert detect_dataset(tiny_imagenet) == "imagenet"
    assert detect_dataset(tmp_path) is None
    check_data_dir("cifar10", cifar_subset)
    check_data_dir("imagenet", tiny_imagenet)
    check_data_dir("synthetic", None)
    with pytest.raises(DatasetNotFoundError, match="is not cifar10 \\(it holds imagenet\\)"):
        check_data_dir("cifar10", tiny_imagenet)
    with pytest.raises(DatasetNotFoundError, match="needs a data folder"):
        check_data_dir("imagenet", None)


@pytest.mark.parametrize(
    ("args", "fix"),
    [
        (("--gpus-per-trial", "1"), "asks for 1 CPU, 1 GPU, which no node has or the autoscaler can add"),
        (("--data-parallel", "32"), "asks for 32 data-parallel workers, one CPU each, but the cluster has"),
    ],
)
def test_a_trial_no_node_can_host_is_refused_instead_of_pending_for_ever(
    args: tuple[str, ...], fix: str, tmp_path: Path
) -> None:
    """Tune would leave such a trial PENDING (or its workers waiting) for ever; the study stops at once."""
    done = study("--dataset", "cifar10", "--storage", str(tmp_path), *args, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    message = [line for line in done.stderr.splitlines() if "error" in line]
    assert len(message) == 1 and "Traceback" not in done.stderr, done.stderr
    assert fix in message[0] and ("drop --gpus-per-trial" in message[0] or "--data-parallel 2 or fewer" in message[0])
    assert list(tmp_path.iterdir()) == []  # no store, no experiment folder
