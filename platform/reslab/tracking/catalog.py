"""What a store holds, read the one way that the writer, the `reslab` CLI and the dashboard share: a study's
latest launch, and every registered net with its versions. MLflow only (no torch, no Ray)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .layout import LAUNCH_TAG, filter_literal


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
            found.append(
                RegisteredVersion(
                    name=model.name,
                    version=int(version.version),
                    aliases=tuple(sorted(a for a, v in aliases.items() if str(v) == str(version.version))),
                    test_error=float(tags["test_error"]) if "test_error" in tags else math.nan,
                    train_error=float(tags["train_error"]) if "train_error" in tags else math.nan,
                    study=tags.get("experiment", tags.get("study", "")),
                    run=tags.get("run_name", ""),
                )
            )
    return sorted(found, key=lambda v: (v.name, v.version))
