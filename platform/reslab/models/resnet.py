"""The one network class both families share: stem -> stages of blocks -> global average pool -> fc."""

from __future__ import annotations

import torch
from torch import nn

from .blocks import ResidualBlock, he_init


class ResNet(nn.Module):
    """A stem, a sequence of stages, global average pooling and a linear classifier.

    CIFAR and ImageNet nets differ only in their stem and stage plan (ARCHITECTURE.md, rule 4), so
    they are built by separate constructors around this single class.
    """

    def __init__(self, stem: nn.Sequential, stages: list[nn.Sequential], num_features: int, num_classes: int):
        super().__init__()
        self.stem = stem
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(num_features, num_classes)
        he_init(self)

    @property
    def blocks(self) -> list[ResidualBlock]:
        """Every block in forward order (used by layer-response analysis and tests)."""
        return [m for m in self.modules() if isinstance(m, ResidualBlock)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return self.fc(torch.flatten(self.pool(x), 1))
