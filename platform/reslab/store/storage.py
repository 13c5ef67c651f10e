"""Files beside a study's Ray Tune experiment (grid.json, launch.json, the summaries): written and read the
same way in a local folder, on NFS or in a bucket (s3://...), through pyarrow's filesystems as Ray uses."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
from pathlib import Path

MIN_FREE_BYTES = 64 * 2**20  # less free space than this on --storage: a checkpoint may not fit


FAULT_ERRNOS = (errno.ENOSPC, errno.EROFS, errno.EDQUOT)
FAULT_TEXTS = ("No space left on device", "Read-only file system", "Disk quota exceeded")
# the loggers Ray reports a failed write to storage on (a filter on a logger sees the records logged on it,
# whichever handler Ray or Tune sets up later)
RAY_STORAGE_LOGGERS = (
    "ray.train._internal.syncer",  # "Last sync command failed ..."
    "ray.tune.execution.experiment_state",  # "Saving experiment state to storage ... failed"
    "ray.tune.execution.tune_controller",  # "Trial task failed ..." (a checkpoint that did not fit)
)


class StorageFault(OSError):
    """The study's --storage took no more writes (full, read-only): the study stops with one message."""


class StorageFaultLogFilter(logging.Filter):
    """Drops Ray's log records about a storage that takes no more writes: Ray logs a traceback for each failed
    copy (29 tracebacks, 839 lines, when a 200 MB disk filled in the test), while the study ends with one
    message saying what to do (`StorageFault`). Installed on Ray's loggers unless --verbose."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, OSError) and error.errno in FAULT_ERRNOS:
            return False
        text = record.getMessage() + (str(error) if error is not None else "")
        return not any(fault in text for fault in FAULT_TEXTS)


def quiet_storage_faults() -> None:
    """Leave a storage fault to the study's one message (see `StorageFaultLogFilter`)."""
    for name in RAY_STORAGE_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, StorageFaultLogFilter) for f in logger.filters):
            logger.addFilter(StorageFaultLogFilter())


def is_cloud_uri(folder: str | Path) -> bool:
    """A folder in object storage (s3://, gs://, ...), not on this machine's filesystem."""
    return "://" in str(folder) and not str(folder).startswith("file://")


def filesystem(uri: str):
    import pyarrow.fs

    return pyarrow.fs.FileSystem.from_uri(uri)


def write_bytes(folder: str, name: str, data: bytes) -> None:
    fs, path = filesystem(folder)
    fs.create_dir(path, recursive=True)
    with fs.open_output_stream(f"{path}/{name}") as out:
        out.write(data)


def read_bytes(folder: str, name: str) -> bytes | None:
    import pyarrow.fs

    fs, path = filesystem(folder)
    if fs.get_file_info(f"{path}/{name}").type == pyarrow.fs.FileType.NotFound:
        return None
    with fs.open_input_stream(f"{path}/{name}") as stream:
        return stream.read()


def write_text(folder: str, name: str, text: str) -> None:
    write_bytes(folder, name, text.encode())


def read_text(folder: str, name: str) -> str | None:
    data = read_bytes(folder, name)
    return None if data is None else data.decode()


def delete_file(folder: str, name: str) -> None:
    fs, path = filesystem(folder)
    fs.delete_file(f"{path}/{name}")


def storage_uri(storage: str | os.PathLike) -> str:
    text = str(storage)
    return text if "://" in text else str(Path(text).resolve())


def storage_fault(folder: str) -> str | None:
    """Why a local --storage folder cannot take writes now ("full", "read-only"), or None when it can (and for
    a bucket, which reports its own errors). Found by writing a small file there, as a checkpoint would."""
    if is_cloud_uri(folder):
        return None
    path = Path(str(folder).removeprefix("file://"))
    existing = next((p for p in [path, *path.parents] if p.exists()), None)
    if existing is None:
        return None
    probe = existing / f".reslab-write-probe-{os.getpid()}"
    try:
        with probe.open("wb") as out:
            out.write(bytes(2**16))
            out.flush()
            os.fsync(out.fileno())
    except OSError as error:
        if error.errno == errno.ENOSPC:
            return "full"
        return "read-only" if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM) else f"failing ({error.strerror})"
    finally:
        with contextlib.suppress(OSError):  # on a read-only mount even a missing file's unlink fails (EROFS)
            probe.unlink(missing_ok=True)
    return "full" if shutil.disk_usage(existing).free < MIN_FREE_BYTES else None
