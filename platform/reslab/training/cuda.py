"""CUDA or nothing: a trial that holds a GPU share trains on that GPU, or fails at once saying why.

Ray hands a trial a GPU share because the node declares GPUs; torch may still find no usable CUDA (no
driver, or a driver older than the CUDA this torch build needs). Training on the CPU then would turn a
GPU-hour into a CPU-day without a word, so it is refused unless a study explicitly allows the fallback
(`--allow-cpu-fallback`, what the CPU-only tests with declared fake GPUs use).
"""

from __future__ import annotations

import shutil
import subprocess
import warnings
from pathlib import Path

import torch


class CudaUnavailable(RuntimeError):
    """A trial was given a GPU but this torch cannot use CUDA here."""


def driver_version() -> str | None:
    """The NVIDIA driver's version on this node, or None when there is no driver."""
    version_file = Path("/proc/driver/nvidia/version")
    if version_file.is_file():
        for word in version_file.read_text(errors="replace").split():
            if word.count(".") >= 1 and word.replace(".", "").isdigit():
                return word
    if smi := shutil.which("nvidia-smi"):
        query = [smi, "--query-gpu=driver_version", "--format=csv,noheader"]
        done = subprocess.run(query, capture_output=True, text=True, timeout=30, check=False)
        if done.returncode == 0 and done.stdout.strip():
            return done.stdout.split()[0]
    return None


def cuda_problem() -> str | None:
    """Why torch cannot use CUDA on this node (None when it can): torch's CUDA version, the driver's, and
    torch's own warning, which names e.g. a driver that is too old."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if torch.cuda.is_available():
            return None
    build = f"torch {torch.__version__} (built for CUDA {torch.version.cuda})" if torch.version.cuda else None
    build = build or f"torch {torch.__version__} is a CPU-only build (no CUDA)"
    driver = driver_version()
    found = f"NVIDIA driver {driver}" if driver else "no NVIDIA driver (/proc/driver/nvidia/version, nvidia-smi)"
    said = next((str(w.message).splitlines()[0] for w in caught if "CUDA" in str(w.message)), "")
    return f"{build} finds no usable GPU: {found}{f' ({said})' if said else ''}"


def check_gpu_usable(gpu_ids: list[str] | list[int], allow_cpu_fallback: bool) -> str | None:
    """The device a trial holding `gpu_ids` trains on: None (CUDA, as usual) or "cpu" when allowed to
    fall back. Raises CudaUnavailable with what to install when it holds a GPU that torch cannot use."""
    if not gpu_ids:
        return None
    problem = cuda_problem()
    if problem is None:
        return None
    if allow_cpu_fallback:
        return "cpu"
    held = ",".join(map(str, gpu_ids))
    raise CudaUnavailable(
        f"this trial holds GPU {held} but {problem}; install an NVIDIA driver that supports CUDA "
        f"{torch.version.cuda or '(a CUDA build of torch)'} or a torch build for the driver's CUDA "
        "(https://pytorch.org/get-started/locally/), or pass --allow-cpu-fallback to train on the CPU"
    )
