"""Tracking in MLflow: the store, the names a study's runs are written by (`layout`), the Tune callback that
writes them, and the model registry (`load_model("models:/NAME@best")`, loaded on first use: reading a
store, as the dashboard does, needs no torch)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .store import TrackingUnavailable, check_reachable, prepare_store, resolve_tracking_uri

if TYPE_CHECKING:
    from .registry import load_model

__all__ = ["TrackingUnavailable", "check_reachable", "load_model", "prepare_store", "resolve_tracking_uri"]


def __getattr__(name: str) -> Any:
    if name == "load_model":
        from .registry import load_model

        return load_model
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
