"""The paper's building blocks (Fig. 2 and Fig. 5): basic (3x3, 3x3) and bottleneck (1x1, 3x3, 1x1).

Every convolution is bias-free and followed by BN; the block's last ReLU comes after the addition.
A block built with `shortcut=None` is the plain counterpart: the same layers without the addition,
so plain vs residual is one argument, not a second class.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .shortcuts import make_shortcut


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """A bias-free 3x3 convolution with 'same' padding (BN follows, so a bias would be redundant)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    """A bias-free 1x1 convolution."""
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False)


class ResidualBlock(nn.Module):
    """y = relu(F(x) + shortcut(x)), or y = relu(F(x)) when the block is plain.

    `residual` is F without its final ReLU; its last module is the BN whose gamma, when zero,
    makes the block an identity (the property the paper's argument in Section 3.1 rests on).
    """

    def __init__(self, residual: nn.Sequential, shortcut: nn.Module | None) -> None:
        super().__init__()
        self.residual = residual
        self.shortcut = shortcut
        self.relu = nn.ReLU(inplace=True)

    @property
    def is_plain(self) -> bool:
        return self.shortcut is None

    @property
    def last_bn(self) -> nn.BatchNorm2d:
        return self.residual[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.residual(x)
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return self.relu(out)


def basic_block(in_channels: int, out_channels: int, stride: int, shortcut: str | None) -> ResidualBlock:
    """Two 3x3 convolutions; the first carries the stride (Fig. 2 left, Fig. 5 left)."""
    residual = nn.Sequential(
        conv3x3(in_channels, out_channels, stride),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        conv3x3(out_channels, out_channels),
        nn.BatchNorm2d(out_channels),
    )
    return ResidualBlock(residual, make_shortcut(shortcut, in_channels, out_channels, stride))


BOTTLENECK_EXPANSION = 4


def bottleneck_block(in_channels: int, out_channels: int, stride: int, shortcut: str | None) -> ResidualBlock:
    """1x1 reduce, 3x3, 1x1 restore to `out_channels` = 4 x width (Fig. 5 right).

    The stride sits on the first 1x1 convolution, as in the paper's released models; this is what
    gives Table 1's 3.8 / 7.6 / 11.3 G multiply-adds (torchvision's stride-on-3x3 variant has the
    same parameters but about 8 % more multiply-adds).
    """
    width = out_channels // BOTTLENECK_EXPANSION
    residual = nn.Sequential(
        conv1x1(in_channels, width, stride),
        nn.BatchNorm2d(width),
        nn.ReLU(inplace=True),
        conv3x3(width, width),
        nn.BatchNorm2d(width),
        nn.ReLU(inplace=True),
        conv1x1(width, out_channels),
        nn.BatchNorm2d(out_channels),
    )
    return ResidualBlock(residual, make_shortcut(shortcut, in_channels, out_channels, stride))


BlockFn = Callable[[int, int, int, "str | None"], ResidualBlock]

BLOCKS: dict[str, BlockFn] = {"basic": basic_block, "bottleneck": bottleneck_block}


def get_block(name: str) -> BlockFn:
    """The block constructor called `name`; an unknown name raises listing the valid ones."""
    if name not in BLOCKS:
        raise ValueError(f"unknown block {name!r}; valid blocks: {', '.join(BLOCKS)}")
    return BLOCKS[name]


def make_stage(
    block: BlockFn, in_channels: int, out_channels: int, num_blocks: int, stride: int, shortcut: str | None
) -> nn.Sequential:
    """A stage of `num_blocks` blocks; only the first changes the shape (stride and width)."""
    layers = [block(in_channels, out_channels, stride, shortcut)]
    layers += [block(out_channels, out_channels, 1, shortcut) for _ in range(num_blocks - 1)]
    return nn.Sequential(*layers)


def he_init(model: nn.Module) -> None:
    """The paper's initialization: He ("MSRA") normal for convolutions, BN as the identity."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
