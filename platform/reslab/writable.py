"""Checks that a command's output place can be written, made before the work: a report or a pull that
fails only when it writes (after 20 s of queries, or a download) loses that work and ends in a traceback."""

from __future__ import annotations

import tempfile
from pathlib import Path


def check_writable(path: str | Path, flag: str) -> None:
    """ValueError naming `flag` when `path` (a file or folder to be made) cannot be created where it is to
    be: the nearest folder that exists must take a new entry. Probed with a temporary file, removed at once."""
    path = Path(path).absolute()
    existing = next((p for p in path.parents if p.exists()), None)
    if existing is None or not existing.is_dir():
        raise ValueError(f"{flag} {path}: {existing} is not a folder; name a place in a folder you can write")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise ValueError(
            f"{flag} {path} cannot be written ({error.strerror or error}: {existing}); name a place in a folder "
            "you can write"
        ) from error
