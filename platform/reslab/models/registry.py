"""The model registry: every buildable net by name, with the facts studies need about it.

Builders register themselves with `@register_model`; `create_model` is the one way to build a net
by name. Unknown names and impossible arguments raise `ValueError` listing the valid choices
(never a silent default), so a study can be validated before any trial starts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from torch import nn

from .shortcuts import SHORTCUT_OPTIONS, check_shortcut

Family = Literal["cifar", "imagenet"]

DEFAULT_SHORTCUT: dict[str, str] = {"cifar": "A", "imagenet": "B"}
INPUT_SIZE: dict[str, tuple[int, int, int]] = {"cifar": (3, 32, 32), "imagenet": (3, 224, 224)}
NUM_CLASSES: dict[str, int] = {"cifar": 10, "imagenet": 1000}


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about one builder."""

    name: str  # registered name, e.g. "cifar_resnet56"
    build: Callable[..., nn.Module]  # the builder function
    family: Family  # which stem and dataset the net is made for
    depth: int | None  # weighted layers; None for the any-depth constructors (take depth=)
    plain: bool  # True for nets without shortcuts

    @property
    def input_size(self) -> tuple[int, int, int]:
        """The (channels, height, width) of one input image."""
        return INPUT_SIZE[self.family]

    @property
    def default_shortcut(self) -> str | None:
        """The paper's option for this family (A on CIFAR, B on ImageNet); None for plain nets."""
        return None if self.plain else DEFAULT_SHORTCUT[self.family]

    def shortcut_for(self, shortcut: str | None) -> str | None:
        """The option a net of this kind is built with: None for a plain net (it has no shortcuts); for a
        residual one `shortcut`, or the paper's default for the family when it is not given."""
        return None if self.plain else (shortcut or self.default_shortcut)


_REGISTRY: dict[str, ModelInfo] = {}


def register_model(
    family: Family, *, depth: int | None = None, plain: bool = False
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register the decorated builder under its function name."""

    def register(build: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        name = build.__name__
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is registered twice")
        _REGISTRY[name] = ModelInfo(name, build, family, depth, plain)
        return build

    return register


def list_models(family: Family | None = None) -> list[str]:
    """The registered paper-table nets (fixed depth), optionally of one family, in a stable order."""
    return [n for n, i in _REGISTRY.items() if i.depth is not None and family in (None, i.family)]


def get_model_info(name: str) -> ModelInfo:
    """The registry entry for `name`; an unknown name raises listing every valid one."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; valid models: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def create_model(
    name: str, *, shortcut: str | None = None, num_classes: int | None = None, **kwargs: object
) -> nn.Module:
    """Build the registered net `name`.

    `shortcut` is the paper's option letter (default: A for CIFAR nets, B for ImageNet nets); plain
    nets take none. The any-depth constructors (`cifar_resnet`, `cifar_plain`) need `depth=`.
    """
    info = get_model_info(name)
    if info.plain and shortcut is not None:
        raise ValueError(
            f"{name} is a plain net and has no shortcut; got shortcut={shortcut!r}. "
            f"Use the residual counterpart {name.replace('plain', 'resnet')!r} with one of "
            f"{', '.join(SHORTCUT_OPTIONS)}"
        )
    if not info.plain:
        kwargs["shortcut"] = check_shortcut(info.shortcut_for(shortcut))
    if info.depth is None and "depth" not in kwargs:
        raise ValueError(f"{name} builds any depth and needs depth=, e.g. create_model({name!r}, depth=74)")
    if num_classes is not None:
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer; got {num_classes!r}")
        kwargs["num_classes"] = num_classes
    return info.build(**kwargs)
