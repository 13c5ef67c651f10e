"""Paper-exact ResNets and plain nets, built by name: `create_model("cifar_resnet56")`."""

import os

from torch import nn

from . import zoo as _zoo  # noqa: F401  (registers every builder)
from .complexity import Complexity, complexity
from .registry import ModelInfo, create_model, get_model_info, list_models, register_model
from .shortcuts import SHORTCUT_OPTIONS


def load(uri: str | os.PathLike, tracking_uri: str | None = None) -> nn.Module:
    """A trained net, eval mode: `load("models:/cifar10-cifar_resnet110-A@best")` from the MLflow registry
    (or `/3` for a version), or a model folder pulled with `reslab models pull`. Weights are read
    without unpickling code."""
    from ..tracking.registry import load as load_registered

    return load_registered(uri, tracking_uri)


__all__ = [
    "SHORTCUT_OPTIONS",
    "Complexity",
    "ModelInfo",
    "complexity",
    "create_model",
    "get_model_info",
    "list_models",
    "load",
    "register_model",
]
