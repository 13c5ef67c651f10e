"""Paper-exact ResNets and plain nets, built by name: `create_model("cifar_resnet56")`."""

from . import zoo as _zoo  # noqa: F401  (registers every builder)
from .complexity import Complexity, complexity
from .registry import ModelInfo, create_model, get_model_info, list_models, register_model
from .shortcuts import SHORTCUT_OPTIONS
from .spec import ModelSpec

__all__ = [
    "SHORTCUT_OPTIONS",
    "Complexity",
    "ModelInfo",
    "ModelSpec",
    "complexity",
    "create_model",
    "get_model_info",
    "list_models",
    "register_model",
]
