"""One driver per experiment: a second driver launching the same study into the same --storage is refused
with a message naming the first, because two Tune drivers on one experiment folder overwrite each other's
state and track every trial twice.

The lock must not outlive its driver: a driver killed by SIGKILL or a lost head cannot clean up.
- A local folder (also NFS, which every node mounts): `flock` on `driver.lock` in the experiment folder,
  held while the driver lives. The kernel drops it when the process dies, however it dies; the file's
  text only names the holder for the refusal message.
- A bucket (s3://, gs://) has no locks: a lease file `driver.json` whose holder rewrites its heartbeat
  every HEARTBEAT_S seconds. A lease not renewed for STALE_AFTER_S is a dead driver's and is taken over.
  Two drivers starting within the same second can both win; the lease is for the user who starts a
  study twice by mistake, not for a race.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from .layout import LEASE_FILE
from .storage import delete_file, is_cloud_uri, read_text, write_text

LOCK_FILE = "driver.lock"
HEARTBEAT_S = 30.0
STALE_AFTER_S = 120.0


class StudyRunning(ValueError):
    """Another live driver runs this experiment."""


def driver_lock(experiment: str) -> contextlib.AbstractContextManager[None]:
    """Hold the experiment's driver lock for the `with` block; raise StudyRunning naming the holder, or
    ValueError when the experiment folder cannot be created (before Ray starts)."""
    if is_cloud_uri(experiment):
        return _lease(experiment)
    return _flock(Path(experiment.removeprefix("file://")))


def _holder() -> dict[str, object]:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "command": " ".join(sys.argv)[:300],
    }


def describe(holder: dict[str, object]) -> str:
    return f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}: {holder.get('command')}"


def _refusal(experiment: object, holder: dict[str, object]) -> StudyRunning:
    return StudyRunning(
        f"{experiment} is already being run by another driver ({describe(holder)}); wait for it to end, stop it "
        "(its Ctrl-C keeps every result; --resume continues), or pass another --storage"
    )


@contextlib.contextmanager
def _flock(folder: Path) -> Iterator[None]:
    made = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first: removed again if left empty
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by child processes
    except OSError as error:
        raise ValueError(
            f"cannot create the experiment folder {folder} ({error.strerror}); pass a --storage folder you can write"
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            text = (folder / LOCK_FILE).read_text()
            raise _refusal(folder, json.loads(text) if text.strip() else {}) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(_holder()).encode(), 0)
        yield
    finally:
        if made and [p.name for p in folder.iterdir()] == [LOCK_FILE]:  # refused before writing (a cluster
            _remove_empty(folder / LOCK_FILE, made)  # check after Ray started): leave nothing behind
        os.close(fd)  # releases the lock; a dead process's descriptors are closed by the kernel


def _remove_empty(lock: Path, folders: list[Path]) -> None:
    with contextlib.suppress(OSError):
        lock.unlink()
        for folder in folders:
            folder.rmdir()


@contextlib.contextmanager
def _lease(experiment: str) -> Iterator[None]:
    me = {**_holder(), "lease": uuid.uuid4().hex}
    text = read_text(experiment, LEASE_FILE)
    if text:
        holder = json.loads(text)
        if time.time() - float(holder.get("heartbeat", 0)) < STALE_AFTER_S:
            raise _refusal(experiment, holder)
    stop = threading.Event()

    def renew() -> None:
        write_text(experiment, LEASE_FILE, json.dumps({**me, "heartbeat": time.time()}))

    try:
        renew()
    except OSError as error:
        raise ValueError(f"cannot write to {experiment} ({error}); check the bucket and its credentials") from None

    def keep_renewing() -> None:
        while not stop.wait(HEARTBEAT_S):
            with contextlib.suppress(OSError):  # a missed renewal is retried; 4 in a row would lose the lease
                renew()

    thread = threading.Thread(target=keep_renewing, name="reslab-driver-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        with contextlib.suppress(OSError, ValueError):
            if json.loads(read_text(experiment, LEASE_FILE) or "{}").get("lease") == me["lease"]:
                delete_file(experiment, LEASE_FILE)  # not one a later driver took over
