"""How a study recognises a storage that takes no more writes, and keeps Ray's reports of it to one message."""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import pytest

from reslab.store.storage import quiet_storage_faults, storage_fault


@pytest.fixture
def read_only_folder(tmp_path: Path):
    """A folder mounted read-only (a bind mount of a folder here), as a storage that turned read-only."""
    source, view = tmp_path / "source", tmp_path / "view"
    source.mkdir()
    view.mkdir()
    if subprocess.run(["mount", "--bind", str(source), str(view)], capture_output=True).returncode != 0:
        pytest.skip("cannot mount here (needs root with CAP_SYS_ADMIN)")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], check=True)
        yield view
    finally:
        subprocess.run(["umount", "-l", str(view)], check=False)


def test_a_read_only_storage_is_recognised_and_a_writable_one_is_not(read_only_folder: Path, tmp_path: Path) -> None:
    assert storage_fault(str(read_only_folder / "study-smoke")) == "read-only"
    assert storage_fault(str(tmp_path / "study-smoke")) is None
    assert storage_fault("s3://bucket/reslab") is None  # a bucket reports its own errors


def test_ray_reports_of_a_storage_fault_are_left_to_the_study_message(caplog: pytest.LogCaptureFixture) -> None:
    quiet_storage_faults()
    syncer = logging.getLogger("ray.train._internal.syncer")
    with caplog.at_level(logging.INFO, logger="ray"):
        try:
            raise OSError("[Errno 28] Error writing bytes to file. Detail: [errno 28] No space left on device")
        except OSError:
            syncer.error("Last sync command failed with the following error:", exc_info=True)
        logging.getLogger("ray.tune.execution.experiment_state").error(
            "Saving failed", exc_info=OSError(30, "Read-only file system")
        )
        syncer.error("Last sync command failed with the following error: ConnectionError: bucket unreachable")
    assert [r.getMessage() for r in caplog.records] == [
        "Last sync command failed with the following error: ConnectionError: bucket unreachable"
    ]  # other failures are still reported
