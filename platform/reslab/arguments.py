"""argparse types shared by the `reslab` command and the study scripts: a bad number is refused where it is
typed, with the rule, instead of starting Ray with 0 concurrent trials (which runs nothing) or a negative
GPU share."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (0 concurrent trials or 0 workers would run nothing, or hang)."""
    if not text.strip().lstrip("+").isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return int(text)


def gpu_share(text: str) -> float:
    """argparse type: a GPU share per trial, 0 (CPU only) to 1 or whole GPUs above it."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0 or (value > 1 and not value.is_integer()):
        raise argparse.ArgumentTypeError(f"must be 0, a share in (0, 1] or a whole number of GPUs, got {text!r}")
    return value


def port_number(text: str) -> int:
    """argparse type: a TCP port to serve on."""
    if not text.strip().isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"must be a port number from 1 to 65535, got {text!r}")
    return int(text)


def gigabytes(text: str) -> float:
    """argparse type: a positive, finite size in GB (the cap an archive may unpack to)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a size in GB above 0, got {text!r}")
    return value


def seconds(text: str) -> float:
    """argparse type: a finite duration in seconds, 0 or more (how long to wait for something)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a number of seconds, 0 or more, got {text!r}")
    return value
