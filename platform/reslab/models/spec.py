"""A net as one value: a registered builder and its arguments, built one way and named one way wherever a
net is needed (a trial, the plan, the GPU share, the registry)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from torch import nn

from .complexity import complexity
from .registry import ModelInfo, create_model, get_model_info


@dataclass(frozen=True)
class ModelSpec:
    """A registered net and the arguments it is built with. The shortcut is spelled out (the family's default
    when not given; None only for a plain net), so two specs of the same net are equal. Its fields are named
    as the training config's, which holds them: a new builder argument is one field here and one there."""

    model: str  # a registered builder, e.g. "cifar_resnet56", or an any-depth one such as "cifar_resnet"
    shortcut: str | None = None  # option "A", "B" or "C" of a residual net
    depth: int | None = None  # only for the any-depth builders

    def __post_init__(self) -> None:
        with contextlib.suppress(ValueError):  # an unknown name: `build()` and the config's problems() name it
            object.__setattr__(self, "shortcut", self.info.shortcut_for(self.shortcut))

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> ModelSpec:
        """The spec held in a config (a `TrainConfig.to_dict()`, or any mapping with these fields)."""
        return cls(**{f.name: values[f.name] for f in fields(cls) if f.name in values})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def info(self) -> ModelInfo:
        return get_model_info(self.model)

    @property
    def label(self) -> str:
        """The net's name with its depth: "cifar_resnet56", and "cifar_resnet74" for the any-depth builder."""
        return self.model if self.depth is None else f"{self.model}{self.depth}"

    def build(self, num_classes: int | None = None) -> nn.Module:
        arguments = {k: v for k, v in self.to_dict().items() if k not in ("model", "shortcut") and v is not None}
        return create_model(self.model, shortcut=self.shortcut, num_classes=num_classes, **arguments)

    def multiply_adds(self, input_size: tuple[int, int, int] | None = None) -> int:
        """Multiply-adds of one forward pass per image (the paper's FLOPs), at the family's input size."""
        return _multiply_adds(self, input_size or self.info.input_size)


@functools.cache
def _multiply_adds(spec: ModelSpec, input_size: tuple[int, int, int]) -> int:
    return complexity(spec.build(), input_size).multiply_adds
