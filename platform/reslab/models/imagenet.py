"""The ImageNet nets of Table 1: 18, 34 (basic blocks) and 50, 101, 152 (bottleneck blocks).

conv1 7x7/2 with 64 filters, 3x3 max pool /2, four stages on 56², 28², 14², 7² maps (conv3_1,
conv4_1 and conv5_1 downsample with stride 2), global average pooling and a 1000-way fc.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import nn

from .blocks import BOTTLENECK_EXPANSION, get_block, make_stage
from .resnet import ResNet

STAGE_WIDTHS = (64, 128, 256, 512)


class StagePlan(NamedTuple):
    """One row of Table 1: the block type and how many blocks each stage has."""

    block: str
    blocks: tuple[int, int, int, int]


TABLE1: dict[int, StagePlan] = {
    18: StagePlan("basic", (2, 2, 2, 2)),
    34: StagePlan("basic", (3, 4, 6, 3)),
    50: StagePlan("bottleneck", (3, 4, 6, 3)),
    101: StagePlan("bottleneck", (3, 4, 23, 3)),
    152: StagePlan("bottleneck", (3, 8, 36, 3)),
}


def stage_plan(depth: int) -> StagePlan:
    """Table 1's row for `depth`; other depths raise listing the table's depths."""
    if depth not in TABLE1:
        raise ValueError(f"ImageNet depth must be one of {', '.join(map(str, TABLE1))}; got {depth!r}")
    return TABLE1[depth]


def imagenet_net(depth: int, shortcut: str | None, num_classes: int = 1000) -> ResNet:
    """The shared constructor: `shortcut=None` gives the plain net, a letter the residual one."""
    plan = stage_plan(depth)
    expansion = BOTTLENECK_EXPANSION if plan.block == "bottleneck" else 1
    stem = nn.Sequential(
        nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    )
    block, stages, in_channels = get_block(plan.block), [], 64
    for index, (width, num_blocks) in enumerate(zip(STAGE_WIDTHS, plan.blocks, strict=True)):
        out_channels = width * expansion
        stages.append(make_stage(block, in_channels, out_channels, num_blocks, 1 if index == 0 else 2, shortcut))
        in_channels = out_channels
    return ResNet(stem, stages, in_channels, num_classes)
