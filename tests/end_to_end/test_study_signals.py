"""Signals to a study's driver: SIGTERM (what `timeout`, systemd, Slurm and Kubernetes send) acts as the first
Ctrl-C, and a second Ctrl-C exits at once without a traceback; either way the experiment resumes to its end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import write_study

SETTINGS = {"iterations": 400, "eval_every": 20, "batch_size": 16}


def start(folder: Path, *args: str) -> tuple[subprocess.Popen, Path]:
    """The study's driver in a process group of its own, its console lines going to a file."""
    out = folder / f"console-{time.monotonic_ns()}.txt"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    with out.open("w") as console:
        driver = subprocess.Popen(
            [sys.executable, str(folder / "sig.py"), "--storage", str(folder / "st"), *args],
            cwd=folder, env=env, stdout=console, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip
    return driver, out


def wait_for_reports(out: Path, driver: subprocess.Popen, timeout: float = 180) -> None:
    """Until both trials have printed a report (they train), or fail the test."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = [line for line in out.read_text().splitlines() if " it " in line]
        if {line.split()[0] for line in lines} == {"cifar_resnet20", "cifar_plain20"}:
            return
        assert driver.poll() is None, driver.stderr.read() if driver.stderr else ""
        time.sleep(0.5)
    raise AssertionError(f"no reports from both trials in {timeout} s: {out.read_text()[-2000:]}")


def store_runs(folder: Path) -> dict[str, tuple[str, str | None, list[int]]]:
    """Every run of the study in its store: name -> (MLflow status, reslab status, test_error steps)."""
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{folder / 'runs' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("sig-smoke")
    return {
        run.info.run_name: (
            run.info.status,
            run.data.tags.get("reslab.status"),
            sorted(m.step for m in client.get_metric_history(run.info.run_id, "test_error")),
        )
        for run in client.search_runs([experiment.experiment_id])
    }


def trials_of(runs: dict[str, tuple[str, str | None, list[int]]]) -> dict[str, tuple[str, str | None, list[int]]]:
    return {name: value for name, value in runs.items() if "-seed" in name}


@pytest.mark.slow
def test_sigterm_stops_a_study_as_ctrl_c_and_a_second_ctrl_c_exits_at_once(tmp_path: Path) -> None:
    write_study(tmp_path, "sig", "grid(model=['cifar_resnet20', 'cifar_plain20'])", SETTINGS)

    driver, out = start(tmp_path)
    wait_for_reports(out, driver)
    driver.send_signal(signal.SIGTERM)  # to the driver alone, as `timeout` or systemd send it
    stderr = driver.communicate(timeout=180)[1]
    assert driver.returncode == 143, stderr[-3000:]
    assert "SIGTERM received" not in stderr and "Traceback" not in stderr  # not Ray's C++ handler's stack dump
    runs = store_runs(tmp_path)
    trials = trials_of(runs)
    assert sorted(trials) == ["cifar_plain20-seed0", "cifar_resnet20-seed0"]  # one run per trial
    assert {status for status, _, _ in runs.values()} == {"FINISHED", "KILLED"}  # nothing left RUNNING
    assert {tag for _, tag, _ in trials.values()} == {"interrupted"}
    assert all(steps and len(steps) == len(set(steps)) and max(steps) < 400 for _, _, steps in trials.values())
    assert "The study was interrupted: of 2 trials, 2 interrupted" in out.read_text()

    driver, out = start(tmp_path)  # runs again, restoring: then Ctrl-C twice
    wait_for_reports(out, driver)
    os.killpg(driver.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the whole foreground group
    time.sleep(0.2)  # while Tune is still stopping the trials
    os.killpg(driver.pid, signal.SIGINT)
    started = time.monotonic()
    stderr = driver.communicate(timeout=120)[1]
    assert driver.returncode == 130 and time.monotonic() - started < 60, stderr[-3000:]
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert "sig: stopped at once; run the same command again (or with --resume) to continue" in stderr

    driver, out = start(tmp_path, "--resume")  # resumable: it continues to the end
    stderr = driver.communicate(timeout=400)[1]
    assert driver.returncode == 0, stderr[-3000:]
    trials = trials_of(store_runs(tmp_path))
    assert sorted(trials) == ["cifar_plain20-seed0", "cifar_resnet20-seed0"]  # still one run per trial
    for status, tag, steps in trials.values():
        assert (status, tag) == ("FINISHED", "finished")
        assert steps == list(range(20, 401, 20))  # every evaluation once: none lost, none logged twice
