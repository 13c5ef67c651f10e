"""reslab: ablation and hyperparameter studies of deep residual networks (He et al., 2016).

`reslab.load_model("models:/NAME@best")` is the registry's loader (`reslab.tracking.load_model`), imported on
first use so that `import reslab` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .tracking.registry import load_model

__version__ = "0.1.0"
__all__ = ["__version__", "load_model"]


def __getattr__(name: str) -> Any:
    if name == "load_model":
        from .tracking.registry import load_model

        return load_model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
