"""What a store holds, read the one way that the writer, the `reslab` CLI and the dashboard share: a study's
latest launch, and every registered net with its versions. MLflow only (no torch, no Ray)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from .layout import LAUNCH_TAG, filter_literal

logger = logging.getLogger(__name__)


def number(values: dict[str, str], key: str, default: float = math.nan) -> float:
    """A tag or param as a finite number (or `default` when it is absent). Anyone who can write to a store can
    set any string, so a value that is not a number raises ValueError naming the key and the value; the
    readers skip that row with a warning instead of failing the whole view."""
    if key not in values:
        return default
    try:
        value = float(values[key])
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value):
        raise ValueError(f"{key}={values[key]!r} is not a number")
    return value


def whole_number(values: dict[str, str], key: str, default: int = 0) -> int:
    """A tag or param that must be a whole number (a seed, an iteration count), as `number` checks it."""
    value = number(values, key, float(default))
    if not value.is_integer():
        raise ValueError(f"{key}={values[key]!r} is not a whole number")
    return int(value)


def latest_launch(client: Any, experiment_id: str) -> Any | None:
    """The experiment's most recent launch (parent) run, or None."""
    launches = client.search_runs(
        [experiment_id], f"tags.{LAUNCH_TAG} = 'true'", order_by=["attributes.start_time DESC"], max_results=1
    )
    return launches[0] if launches else None


@dataclass(frozen=True)
class RegisteredVersion:
    """One version of a registered net, with the errors (fractions) and study it was registered with."""

    name: str
    version: int
    aliases: tuple[str, ...]
    test_error: float
    train_error: float
    study: str
    run: str


def registered_versions(client: Any) -> list[RegisteredVersion]:
    """Every version of every registered net, by name then version."""
    found = []
    for model in sorted(client.search_registered_models(), key=lambda m: m.name):
        aliases = client.get_registered_model(model.name).aliases  # alias -> version
        for version in client.search_model_versions(f"name = {filter_literal(model.name)}"):
            tags = version.tags
            try:
                errors = number(tags, "test_error"), number(tags, "train_error")
            except ValueError as problem:
                logger.warning("skipping %s version %s: its tag %s", model.name, version.version, problem)
                continue
            found.append(
                RegisteredVersion(
                    name=model.name,
                    version=int(version.version),
                    aliases=tuple(sorted(a for a, v in aliases.items() if str(v) == str(version.version))),
                    test_error=errors[0],
                    train_error=errors[1],
                    study=tags.get("experiment", tags.get("study", "")),
                    run=tags.get("run_name", ""),
                )
            )
    return sorted(found, key=lambda v: (v.name, v.version))
