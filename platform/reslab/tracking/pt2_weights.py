"""The state dict inside a `torch.export` program (`.pt2`), read as plain data, never unpickled.

MLflow 3 stores a logged PyTorch model as a `.pt2` archive: a zip with the traced graph as JSON and each
weight as raw little-endian bytes, described by `data/weights/model_weights_config.json`. reslab keeps only
that copy of a trained net's weights and builds the net from its own spec; this module pulls the tensors out
of the archive. `torch.export.load` would do the same but falls back to `torch.load(weights_only=False)` for
any entry marked `use_pickle`, so a crafted archive could run code: here such an entry is refused. Every record
must hold exactly the bytes its sizes, strides and dtype call for, so an edit that keeps the archive readable
(a record made longer or emptied, a dtype code changed) is a CheckpointError, not a net with wrong weights.
`weights_sha256` is the digest a registered version carries and a pull checks.
"""

from __future__ import annotations

import hashlib
import json
import math
import zipfile
from pathlib import Path

import torch

from ..training.checkpoint import CheckpointError

WEIGHTS_CONFIG = "data/weights/model_weights_config.json"
# torch.export's serialized ScalarType codes (torch/_export/serde/schema.py, fixed for compatibility) for
# the dtypes a trained net's state dict holds
DTYPES = {5: torch.int64, 6: torch.float16, 7: torch.float32, 8: torch.float64, 13: torch.bfloat16}


def pt2_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Every weight and buffer of the program in `path`, by its name in the net (`stages.0.0.residual.0.weight`)."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            config_name = next((n for n in names if n.endswith("/" + WEIGHTS_CONFIG)), None)
            if config_name is None:
                raise CheckpointError(f"{path} holds no {WEIGHTS_CONFIG}: not a torch.export program")
            folder = config_name[: -len("model_weights_config.json")]
            entries = json.loads(archive.read(config_name))["config"]
            return {name: _tensor(archive, folder, name, entry) for name, entry in entries.items()}
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError, RuntimeError) as error:
        raise CheckpointError(f"{path} is unreadable ({type(error).__name__}: {error})") from error


def _tensor(archive: zipfile.ZipFile, folder: str, name: str, entry: dict) -> torch.Tensor:
    if entry.get("use_pickle"):
        raise CheckpointError(f"weight {name} is pickled in the archive; reslab reads only raw tensors")
    meta = entry["tensor_meta"]
    dtype = DTYPES.get(meta["dtype"])
    if dtype is None:
        raise CheckpointError(f"weight {name} has dtype code {meta['dtype']}, not one of a net's: {sorted(DTYPES)}")
    data = bytearray(archive.read(folder + entry["path_name"]))  # bytearray: a tensor that owns writable memory
    sizes = [int(s["as_int"]) for s in meta["sizes"]]
    strides = [int(s["as_int"]) for s in meta["strides"]]
    offset = int(meta["storage_offset"]["as_int"])
    if min([*sizes, *strides, offset], default=0) < 0 or len(strides) != len(sizes):
        raise CheckpointError(f"weight {name} has sizes {sizes}, strides {strides}, offset {offset}: not a tensor's")
    elements = offset + 1 + sum((size - 1) * stride for size, stride in zip(sizes, strides, strict=True))
    expected = (elements if math.prod(sizes) else 0) * dtype.itemsize
    if len(data) != expected:
        raise CheckpointError(
            f"weight {name} holds {len(data)} bytes where its sizes {sizes} of {dtype} need {expected}: damaged"
        )
    if not data:  # a tensor with no elements
        return torch.zeros(sizes, dtype=dtype)
    return torch.as_strided(torch.frombuffer(data, dtype=dtype), sizes, strides, offset)


def weights_sha256(weights: dict[str, torch.Tensor]) -> str:
    """A digest of a state dict that depends on its names, dtypes, shapes and values only (not on how a file
    lays them out): what a registered version records of its net, and what a pull and a load check."""
    digest = hashlib.sha256()
    for name in sorted(weights):
        tensor = weights[name].detach().to("cpu").contiguous()
        digest.update(f"{name}:{tensor.dtype}:{list(tensor.shape)}\n".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
