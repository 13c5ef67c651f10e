"""The Optuna study behind a search, kept in a journal file beside the study's results.

Ray Tune's `OptunaSearch` keeps its Optuna study in memory unless given a storage; with a journal file
(Optuna's `JournalFileBackend`) every sampled and finished trial is written as it happens, so
`optuna-dashboard <experiment>/optuna.journal` shows the search while it runs and after it ends, and a
resumed search appends to the same study. A journal needs a filesystem with file locks: for a study in a
bucket (s3://, gs://) it lives on the driver's machine under `~/.cache/reslab/optuna/` and is copied beside
the results when the study ends (and fetched back from there when a fresh driver resumes it).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ..store.layout import JOURNAL
from ..store.storage import is_cloud_uri, read_bytes, write_bytes


def journal_path(experiment_path: str) -> Path:
    """Where the driver writes the search's journal: in the experiment folder, or a local cache for a bucket."""
    if not is_cloud_uri(experiment_path):
        return Path(experiment_path.removeprefix("file://")) / JOURNAL
    name = experiment_path.rstrip("/").rsplit("/", 1)[-1]
    digest = hashlib.sha256(experiment_path.encode()).hexdigest()[:12]  # two buckets may hold one name
    return Path.home() / ".cache" / "reslab" / "optuna" / f"{name}-{digest}" / JOURNAL


def optuna_storage(experiment_path: str) -> Any:
    """The Optuna storage a search's `OptunaSearch` writes into."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(fetch_journal(experiment_path))))


def fetch_journal(experiment_path: str) -> Path:
    """The local journal, made ready before a search starts or resumes: a bucket study's copy is fetched
    when this machine has none (a resume on a fresh driver; Tune's restored searcher opens the same path)."""
    path = journal_path(experiment_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if is_cloud_uri(experiment_path) and not path.exists() and (kept := read_bytes(experiment_path, JOURNAL)):
        path.write_bytes(kept)
    return path


def publish_journal(experiment_path: str) -> str:
    """Copy a bucket study's journal beside its results (a local study's is there already); returns where
    `optuna-dashboard` finds it."""
    path = journal_path(experiment_path)
    if not is_cloud_uri(experiment_path):
        return str(path)
    if path.is_file():
        write_bytes(experiment_path, JOURNAL, path.read_bytes())
    return f"{experiment_path.rstrip('/')}/{JOURNAL} (a copy of {path}; optuna-dashboard reads the local file)"
