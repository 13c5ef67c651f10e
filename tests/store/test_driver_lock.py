"""One driver per experiment (store/lock.py): a second is refused naming the first, and a dead driver's lock
is free at once — an flock on local storage, a lease in a bucket (moto's S3)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import BUCKET
from reslab.store.lock import LEASE_FILE, STALE_AFTER_S, StudyRunning, driver_lock
from reslab.store.storage import read_text, write_text


def test_a_second_driver_is_refused_naming_the_first(tmp_path: Path) -> None:
    experiment = str(tmp_path / "study-smoke")
    refusal = f"already being run by another driver \\(pid {os.getpid()} on "
    with driver_lock(experiment), pytest.raises(StudyRunning, match=refusal), driver_lock(experiment):
        pass
    with driver_lock(experiment):  # released at the end of the block
        pass


def test_a_launch_refused_before_writing_leaves_no_folder_behind(tmp_path: Path) -> None:
    experiment = tmp_path / "new" / "study-smoke"
    with pytest.raises(ValueError, match="refused"), driver_lock(str(experiment)):
        raise ValueError("refused by a check that needs Ray (e.g. local storage on a cluster)")
    assert not (tmp_path / "new").exists()
    with driver_lock(str(experiment)):
        (experiment / "grid.json").write_text("{}")  # a launch that wrote: everything stays
    assert (experiment / "grid.json").is_file()


def test_a_killed_driver_leaves_no_lock_behind(tmp_path: Path) -> None:
    experiment = str(tmp_path / "study-smoke")
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from reslab.store.lock import driver_lock\nwith driver_lock({experiment!r}):\n"
         "    print('held', flush=True)\n    import time; time.sleep(600)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StudyRunning, match=f"pid {holder.pid} "), driver_lock(experiment):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)  # no clean-up runs
        holder.wait()
    with driver_lock(experiment):
        pass


def test_a_storage_that_cannot_hold_the_experiment_is_one_message(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    refusal = r"cannot create the experiment folder .* pass a --storage folder"
    with pytest.raises(ValueError, match=refusal), driver_lock(str(tmp_path / "file" / "study-smoke")):
        pass


def test_in_a_bucket_a_lease_refuses_a_second_driver_and_a_stale_one_is_taken_over(
    s3: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in s3.items():
        monkeypatch.setenv(name, value)
    experiment = f"s3://{BUCKET}/studies/study-smoke"
    with driver_lock(experiment):
        lease = json.loads(read_text(experiment, LEASE_FILE))
        assert lease["pid"] == os.getpid() and time.time() - lease["heartbeat"] < 60
        with pytest.raises(StudyRunning, match=f"pid {os.getpid()} "), driver_lock(experiment):
            pass
    assert read_text(experiment, LEASE_FILE) is None  # the driver that ends gives its lease back
    dead = {"pid": 999999, "host": "gone", "lease": "x", "heartbeat": time.time() - STALE_AFTER_S - 1}
    write_text(experiment, LEASE_FILE, json.dumps(dead))  # a driver that died without giving it back
    with driver_lock(experiment):
        assert json.loads(read_text(experiment, LEASE_FILE))["pid"] == os.getpid()
