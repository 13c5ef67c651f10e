"""Where runs are tracked: a local SQLite store by default, or an MLflow tracking server.

The store is checked before any trial starts, so a server that is down fails the launch with one
message naming it instead of losing results later.
"""

from __future__ import annotations

import base64
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


# the stores MLflow opens (a "+driver" suffix allowed: postgresql+psycopg2://); a bare path is a file store
TRACKING_SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql", "file", "databricks")


def resolve_tracking_uri(uri: str | None = None) -> str:
    """The URI to track to: the argument, else $MLFLOW_TRACKING_URI, else the local SQLite store. A scheme
    MLflow has no store for is a ValueError naming the valid ones (MLflow itself fails at first use)."""
    chosen = uri or os.environ.get("MLFLOW_TRACKING_URI")
    if chosen and "://" in chosen and chosen.split("://")[0].split("+")[0] not in TRACKING_SCHEMES:
        raise ValueError(
            f"tracking URI {chosen!r}: MLflow has no store for {chosen.split('://')[0]!r}; valid: http(s)://HOST:PORT "
            "(a tracking server), sqlite:///PATH.db, postgresql://USER@HOST/DB, mysql://..., file:///FOLDER"
        )
    return chosen or f"sqlite:///{DEFAULT_STORE.resolve()}"  # its folder is made by prepare_store, on first use


def existing_store(uri: str | None = None) -> str:
    """The store a command that only reads opens: a local SQLite file must already exist (reading must not
    leave an empty database behind a typo), a server must answer. Raises TrackingUnavailable naming it."""
    uri = resolve_tracking_uri(uri)
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).is_file():
        raise TrackingUnavailable(
            f"no MLflow store at {uri.removeprefix('sqlite:///')}: a study creates it when it runs "
            "(python studies/NAME.py ...); pass --tracking-uri (or set MLFLOW_TRACKING_URI) to read another store"
        )
    check_reachable(uri)
    return prepare_store(uri)


def prepare_store(uri: str) -> str:
    """Put a local SQLite store in WAL mode (a setting kept in the file): the dashboard and `mlflow ui`
    can then read while a study writes, and a reader never makes a write fail as "database is locked"."""
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with contextlib.closing(sqlite3.connect(path, timeout=30)) as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("SELECT count(*) FROM sqlite_master").fetchone()  # reads the schema: a damaged file fails
        except sqlite3.DatabaseError as error:  # not a database, damaged, or a place that cannot be written
            raise damaged_store(path, error) from error
    return uri


def artifact_location(uri: str) -> str | None:
    """Where a new experiment keeps artifacts: beside a local SQLite store; a server decides itself."""
    if uri.startswith("sqlite:///"):
        folder = Path(uri.removeprefix("sqlite:///")).parent / DEFAULT_ARTIFACTS.name
        folder.mkdir(parents=True, exist_ok=True)
        return folder.resolve().as_uri()
    return None


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """Raise `TrackingUnavailable` naming `uri` if an MLflow server there does not answer its health check,
    or if it asks for a login (its basic-auth app, as on a cluster's head) that this process does not have."""
    if uri.startswith("sqlite:///"):
        return _check_sqlite(Path(uri.removeprefix("sqlite:///")))
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as response:
            if response.status == 200:
                return _check_login(uri, timeout)
            reason = f"HTTP {response.status}"
    except (urllib.error.URLError, OSError) as error:
        reason = str(getattr(error, "reason", error))
    raise TrackingUnavailable(
        f"MLflow tracking server {uri} is unreachable ({reason}); start it (mlflow server --host 127.0.0.1 "
        "--port PORT) or pass another --tracking-uri, e.g. a local sqlite:///path/mlflow.db"
    )


def _check_sqlite(path: Path) -> None:
    """An existing SQLite store must be a database that reads (opened read-only: a check writes nothing)."""
    if not path.is_file():
        return  # a new store: made when the study starts
    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)) as db:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as error:
        raise damaged_store(path, error) from error


def damaged_store(path: Path, error: Exception) -> TrackingUnavailable:
    return TrackingUnavailable(
        f"MLflow store {path} cannot be opened ({error}): it is damaged, not an SQLite file, or in a folder this "
        "user cannot write; pass --tracking-uri naming the study's store (or a copy of it)"
    )


def _check_login(uri: str, timeout: float) -> None:
    """One authenticated read with the login MLflow's client would send ($MLFLOW_TRACKING_USERNAME and
    _PASSWORD, else ~/.mlflow/credentials): a 401 or 403 now is one message, not a failed write per report."""
    from mlflow.utils.credentials import read_mlflow_creds

    request = urllib.request.Request(f"{uri.rstrip('/')}/api/2.0/mlflow/experiments/search?max_results=1")
    login = read_mlflow_creds()
    if login.username and login.password:
        token = base64.b64encode(f"{login.username}:{login.password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        urllib.request.urlopen(request, timeout=timeout).close()
    except urllib.error.HTTPError as error:
        if error.code not in (401, 403):
            return  # not a login problem: MLflow's own calls report it
        said = f"the login of {login.username} was refused" if login.username else "this process has none"
        raise TrackingUnavailable(
            f"MLflow tracking server {uri} asks for a login and {said} (HTTP {error.code}); set "
            "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD or put them in "
            "~/.mlflow/credentials (a cluster's head has its admin login there: cluster/node.sh)"
        ) from None
    except (urllib.error.URLError, OSError):
        return  # it answered /health a moment ago; a blip is not a login problem
