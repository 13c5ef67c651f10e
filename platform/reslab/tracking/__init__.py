"""Tracking in MLflow: the store, and the Tune callback that writes a study's runs into it."""

from .store import TrackingUnavailable, check_reachable, prepare_store, resolve_tracking_uri

__all__ = ["TrackingUnavailable", "check_reachable", "prepare_store", "resolve_tracking_uri"]
