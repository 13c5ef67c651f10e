"""Where runs are tracked: a local SQLite store by default, or an MLflow tracking server.

The store is checked before any trial starts, so a server that is down fails the launch with one
message naming it instead of losing results later.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path

DEFAULT_STORE = Path("runs") / "mlflow.db"  # under the working directory; `mlflow ui --backend-store-uri` opens it
DEFAULT_ARTIFACTS = Path("runs") / "mlartifacts"


class TrackingUnavailable(ConnectionError):
    """The tracking store named by the user cannot be reached."""


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The URI to track to: the argument, else $MLFLOW_TRACKING_URI, else the local SQLite store."""
    chosen = uri or os.environ.get("MLFLOW_TRACKING_URI")
    return chosen or f"sqlite:///{DEFAULT_STORE.resolve()}"  # its folder is made by prepare_store, on first use


def prepare_store(uri: str) -> str:
    """Put a local SQLite store in WAL mode (a setting kept in the file): the dashboard and `mlflow ui`
    can then read while a study writes, and a reader never makes a write fail as "database is locked"."""
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(sqlite3.connect(path, timeout=30)) as db:
            db.execute("PRAGMA journal_mode=WAL")
    return uri


def artifact_location(uri: str) -> str | None:
    """Where a new experiment keeps artifacts: beside a local SQLite store; a server decides itself."""
    if uri.startswith("sqlite:///"):
        folder = Path(uri.removeprefix("sqlite:///")).parent / DEFAULT_ARTIFACTS.name
        folder.mkdir(parents=True, exist_ok=True)
        return folder.resolve().as_uri()
    return None


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Raise `TrackingUnavailable` naming `uri` if an MLflow server there does not answer its health check."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as response:
            if response.status == 200:
                return
            reason = f"HTTP {response.status}"
    except (urllib.error.URLError, OSError) as error:
        reason = str(getattr(error, "reason", error))
    raise TrackingUnavailable(
        f"MLflow tracking server {uri} is unreachable ({reason}); start it (mlflow server --host 127.0.0.1 "
        "--port PORT) or pass another --tracking-uri, e.g. a local sqlite:///path/mlflow.db"
    )
