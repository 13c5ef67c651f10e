"""The paper's shortcut options A, B and C (Section 3.3, Table 3).

A block asks for its shortcut by option letter, input channels, output channels and stride; the
option decides whether that shape change is bridged by a parameter-free zero-padded identity (A)
or by a 1x1 projection + BN (B where shapes change, C everywhere). Plain nets ask for none.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

SHORTCUT_OPTIONS = ("A", "B", "C")


class ZeroPadIdentity(nn.Module):
    """Option A across a shape change: subsample with stride (take every other pixel) and zero-pad
    the extra channels, so the shortcut stays parameter-free."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(f"option A cannot shrink channels ({in_channels} -> {out_channels})")
        self.extra_channels = out_channels - in_channels
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra_channels))


def projection(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """A 1x1 convolution (with the block's stride) followed by BN: the shortcut of options B and C."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False),
        nn.BatchNorm2d(out_channels),
    )


def _option_a(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    if in_channels == out_channels and stride == 1:
        return nn.Identity()
    return ZeroPadIdentity(in_channels, out_channels, stride)


def _option_b(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    if in_channels == out_channels and stride == 1:
        return nn.Identity()
    return projection(in_channels, out_channels, stride)


def _option_c(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    return projection(in_channels, out_channels, stride)


_SHORTCUTS: dict[str, Callable[[int, int, int], nn.Module]] = {
    "A": _option_a,
    "B": _option_b,
    "C": _option_c,
}


def check_shortcut(option: object) -> str:
    """Return the option letter if it is one of the paper's, else raise naming the valid ones."""
    if option not in _SHORTCUTS:
        raise ValueError(f"unknown shortcut option {option!r}; valid options: {', '.join(SHORTCUT_OPTIONS)}")
    return str(option)


def make_shortcut(option: str | None, in_channels: int, out_channels: int, stride: int) -> nn.Module | None:
    """The shortcut a block with this shape change gets under `option`; None for a plain block."""
    if option is None:
        return None
    return _SHORTCUTS[check_shortcut(option)](in_channels, out_channels, stride)
