"""The CIFAR-10 nets of Section 4.2: 6n+2 weighted layers on 32x32 inputs.

A 3x3 conv with 16 filters, then three stages of n basic blocks (2n layers each) with 16, 32 and 64
filters on 32², 16² and 8² maps, global average pooling and a 10-way fc. This is deliberately not
the ImageNet constructor with other numbers: reusing that stem gives the wrong parameter counts.
"""

from __future__ import annotations

from torch import nn

from .blocks import basic_block, conv3x3, make_stage
from .resnet import ResNet

CIFAR_WIDTHS = (16, 32, 64)


def blocks_per_stage(depth: int) -> int:
    """n for a 6n+2-layer net; any other depth raises naming the rule and the paper's depths."""
    if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6 != 0:
        raise ValueError(f"CIFAR depth must be 6n+2 with n >= 1 (e.g. 20, 32, 44, 56, 110, 1202); got {depth!r}")
    return (depth - 2) // 6


def cifar_net(depth: int, shortcut: str | None, num_classes: int = 10) -> ResNet:
    """The shared constructor: `shortcut=None` gives the plain net, a letter the residual one."""
    n = blocks_per_stage(depth)
    stem = nn.Sequential(conv3x3(3, CIFAR_WIDTHS[0]), nn.BatchNorm2d(CIFAR_WIDTHS[0]), nn.ReLU(inplace=True))
    stages, in_channels = [], CIFAR_WIDTHS[0]
    for index, width in enumerate(CIFAR_WIDTHS):
        stages.append(make_stage(basic_block, in_channels, width, n, 1 if index == 0 else 2, shortcut))
        in_channels = width
    return ResNet(stem, stages, in_channels, num_classes)


def cifar_resnet(depth: int, *, shortcut: str = "A", num_classes: int = 10) -> ResNet:
    """A CIFAR ResNet of any 6n+2 depth; the paper uses option A for every CIFAR result."""
    return cifar_net(depth, shortcut, num_classes)


def cifar_plain(depth: int, *, num_classes: int = 10) -> ResNet:
    """The plain counterpart of `cifar_resnet(depth)`: the same stack without shortcuts."""
    return cifar_net(depth, None, num_classes)
