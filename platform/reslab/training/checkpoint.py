"""Checkpoints that survive crashes: written atomically, read without executing pickled code."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

CHECKPOINT_FORMAT = 1
TRIAL_CHECKPOINT = "checkpoint.pt"  # the file in each of a study trial's Ray Tune checkpoint folders


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated, or not one of ours."""


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write `state` to `path` via a temporary file in the same folder and an atomic rename, so a
    crash mid-write leaves the previous checkpoint intact rather than a truncated one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": CHECKPOINT_FORMAT, **state}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except (OSError, RuntimeError) as error:  # disk full, quota, a size limit (torch's writer raises RuntimeError)
        Path(tmp_name).unlink(missing_ok=True)
        reason = getattr(error, "strerror", None) or (str(error).strip().splitlines() or [""])[-1][:200]
        raise CheckpointError(
            f"could not write the checkpoint {path} ({reason}); the previous checkpoint there is "
            "intact: free space and resume (--resume; a study resumes its trials by itself)"
        ) from error
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with `weights_only=True` (tensors and plain containers only)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:
        said = (str(error).strip().splitlines() or [""])[0]
        said = "" if said.startswith("Weights only load failed") else f": {said[:160]}"  # torch's advice misleads
        raise CheckpointError(
            f"checkpoint {path} is unreadable ({type(error).__name__}{said}); it is damaged or not a checkpoint: "
            "remove it to start over, or restore the file from a copy"
        ) from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a reslab checkpoint (format {CHECKPOINT_FORMAT} expected)")
    return state
