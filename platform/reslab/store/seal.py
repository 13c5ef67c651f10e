"""Ray Tune's state files, sealed: restoring a study never unpickles a file reslab did not write.

Tune saves a study's state as pickles (`tuner.pkl` holds the trainable, `experiment_state-*.json` the trials
as cloudpickle) and restores it by loading them: a file planted in a shared --storage would run its code on
the driver. Tune also writes them in place, so a disk that fills mid-write leaves them cut short and the
study unresumable.

So each time Tune saves its state, `launch.callbacks.StateSeal` copies those files into `.reslab-state/`
beside them with an
HMAC of each, keyed by a secret kept outside the storage (`key_path()`), and on restore `restore_sealed`
checks the copies and puts them back in place of whatever Tune's own files hold now. A copy that fails its
check (altered, or sealed with another machine's key) stops the restore; a full disk leaves the last
complete copy, since the manifest that names a copy is written last.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path
from typing import Any

from .layout import SEAL_FOLDER
from .storage import filesystem

MANIFEST = "manifest.json"
TUNER_STATE = "tuner.pkl"
# what Tune unpickles on restore: its own state, the search algorithm's and the callbacks'
STATE_PATTERNS = (
    TUNER_STATE,
    "experiment_state-*.json",
    "basic-variant-state-*.json",
    "search_gen_state-*.json",
    "searcher-state-*.pkl",
    "callback-states-*.pkl",
)
KEEP_COPIES = 2  # the sealed copy and the one before it (a copy being written when the disk filled)


class SealBroken(ValueError):
    """A study's sealed state is missing or fails its check: restoring it could run code from the storage."""


def key_path() -> Path:
    """Where the sealing key lives: $RESLAB_STATE_KEY, else ~/.config/reslab/state.key (never the storage)."""
    return Path(os.environ.get("RESLAB_STATE_KEY") or Path.home() / ".config" / "reslab" / "state.key")


def sealing_key() -> bytes:
    """This machine's sealing key, made (readable by its owner only) the first time a study needs it."""
    path = key_path()
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            out.write(secrets.token_bytes(32))
    return path.read_bytes()


def is_state_file(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in STATE_PATTERNS)


def _mac(key: bytes, experiment: str, name: str, data: bytes) -> str:
    """The HMAC of one state file, bound to its experiment and name (a copy moved elsewhere fails)."""
    message = f"{experiment}\0{name}\0".encode() + hashlib.sha256(data).digest()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def _read(fs: Any, path: str) -> bytes:
    with fs.open_input_stream(path) as stream:
        return stream.read()


def _write(fs: Any, path: str, data: bytes) -> None:
    with fs.open_output_stream(path) as out:
        out.write(data)


def _manifest(fs: Any, seal: str) -> dict | None:
    import pyarrow.fs

    if fs.get_file_info(f"{seal}/{MANIFEST}").type == pyarrow.fs.FileType.NotFound:
        return None
    return json.loads(_read(fs, f"{seal}/{MANIFEST}"))


def seal_files(experiment_path: str, files: dict[str, bytes]) -> None:
    """Add `files` (name -> bytes) to the experiment's sealed state, replacing earlier copies of the same
    names: the copies are written first, then the manifest naming them (so a write cut short leaves the
    previous manifest and its complete copies)."""
    key = sealing_key()
    fs, path = filesystem(experiment_path)
    seal = f"{path}/{SEAL_FOLDER}"
    experiment = Path(path).name
    manifest = _manifest(fs, seal) or {"generation": 0, "files": {}}
    entries = dict(manifest["files"])
    generation = manifest["generation"] + 1
    fs.create_dir(f"{seal}/{generation}", recursive=True)
    for name, data in files.items():
        _write(fs, f"{seal}/{generation}/{name}", data)
        entries[name] = {"copy": f"{generation}/{name}", "mac": _mac(key, experiment, name, data)}
    _write(fs, f"{seal}/{MANIFEST}.tmp", json.dumps({"generation": generation, "files": entries}).encode())
    fs.move(f"{seal}/{MANIFEST}.tmp", f"{seal}/{MANIFEST}")
    stale = generation - KEEP_COPIES  # each save retires one copy (one that still holds a current file stays)
    if stale > 0 and str(stale) not in {entry["copy"].split("/")[0] for entry in entries.values()}:
        with contextlib.suppress(FileNotFoundError):
            fs.delete_dir(f"{seal}/{stale}")


def seal_tuner_state(experiment_path: str) -> None:
    """Seal the `tuner.pkl` a new Tuner just wrote (Tune writes it once, at launch)."""
    fs, path = filesystem(experiment_path)
    seal_files(experiment_path, {TUNER_STATE: _read(fs, f"{path}/{TUNER_STATE}")})


def verified_state(experiment_path: str) -> dict[str, bytes]:
    """The experiment's sealed state files (name -> bytes), each checked against its HMAC; SealBroken, naming
    the problem, when there is no seal or a copy fails its check. Reads only."""
    fs, path = filesystem(experiment_path)
    seal = f"{path}/{SEAL_FOLDER}"
    try:
        manifest = _manifest(fs, seal)
    except (OSError, ValueError) as error:
        raise SealBroken(f"{experiment_path}: reslab's seal over Tune's state is unreadable ({error})") from error
    if manifest is None or TUNER_STATE not in manifest["files"]:
        raise SealBroken(
            f"{experiment_path} holds Ray Tune state that reslab did not seal (files put there by hand, or a seal "
            "removed): restoring it would unpickle those files, which can run code. Launch the study into another "
            "--storage"
        )
    if not key_path().is_file():
        raise SealBroken(
            f"{experiment_path} was sealed with a key this machine does not have ({key_path()}): copy that file "
            "from the machine that launched the study (or set $RESLAB_STATE_KEY to where it is)"
        )
    key = sealing_key()
    experiment = Path(path).name
    state = {}
    for name, entry in manifest["files"].items():
        try:
            data = _read(fs, f"{seal}/{entry['copy']}")
        except OSError:
            data = b""
        if not hmac.compare_digest(_mac(key, experiment, name, data), entry["mac"]):
            raise SealBroken(
                f"{experiment_path}: reslab's sealed copy of {name} was altered or cut short since reslab wrote it "
                f"(or sealed with a key other than {key_path()}); refusing to restore a state that may run code. "
                "Launch the study into another --storage"
            )
        state[name] = data
    return state


def restore_sealed(experiment_path: str, state: dict[str, bytes]) -> list[str]:
    """Put the verified sealed files back in place of Tune's own state files (which may be planted, altered,
    or cut short by a full disk), so Tune restores exactly what reslab sealed. Returns the names of Tune's
    files that differed from the sealed ones."""
    fs, path = filesystem(experiment_path)
    import pyarrow.fs

    differed = []
    present = fs.get_file_info(pyarrow.fs.FileSelector(path))
    for info in present:
        is_state = info.type == pyarrow.fs.FileType.File and is_state_file(info.base_name)
        if is_state and state.get(info.base_name) != _read(fs, info.path):
            differed.append(info.base_name)
            fs.delete_file(info.path)
    for name, data in state.items():
        if name in differed or fs.get_file_info(f"{path}/{name}").type == pyarrow.fs.FileType.NotFound:
            _write(fs, f"{path}/{name}", data)
    return sorted(differed)
