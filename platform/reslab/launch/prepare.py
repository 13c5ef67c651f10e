"""A launch prepared: everything knowable before Ray starts, checked once, with nothing written."""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass, replace
from pathlib import Path

from ..data.fetch import check_source
from ..store.layout import GRID_RECORD
from ..store.seal import verified_state
from ..store.storage import read_text, storage_uri
from ..study import Study, Trial
from ..study.identity import experiment_name, grid_fingerprint
from ..tracking import check_reachable, resolve_tracking_uri
from .options import RunOptions
from .preflight import check_data_here, cluster_address


@dataclass(frozen=True)
class Launch:
    """One launch of a study, as checked before Ray starts: its trials and where it reads, tracks and stores."""

    study: Study
    profile: str
    trials: list[Trial]
    address: str | None  # the cluster joined, or None for an embedded Ray here
    tracking_uri: str
    storage_uri: str  # --storage, absolute
    options: RunOptions

    @property
    def name(self) -> str:
        return experiment_name(self.study, self.profile)

    @property
    def path(self) -> str:
        return f"{self.storage_uri}/{self.name}"


def prepare_launch(
    study: Study, profile: str, storage: str | os.PathLike, tracking_uri: str | None, options: RunOptions
) -> Launch:
    """Each failure one ValueError (or DatasetNotFoundError, TrackingUnavailable): the study's config, the data
    here (or its source), the tracking server, and a restore that would continue a different grid, find
    nothing to resume, or unpickle state reslab did not seal."""
    from ray import tune  # Tune's own test of a restorable folder; it starts no Ray

    data_dir = options.data_dir
    study.validate(profile, data_dir)
    if data_dir and not data_dir.startswith("~"):  # trials run in folders of their own: a relative path breaks
        options = replace(options, data_dir=str(Path(data_dir).absolute()))  # "~": each node's own home
    trials = study.trials(profile, options.data_dir)
    address = cluster_address()
    if options.data_source:
        check_source(options.data_source)  # each trial copies it to --data-dir on its node when that lacks it
    elif address is None:
        check_data_here(trials)  # the trials read the data here
    tracking_uri = resolve_tracking_uri(tracking_uri)
    check_reachable(tracking_uri)  # a server that is down fails the launch before any trial starts
    launch = Launch(study, profile, trials, address, tracking_uri, storage_uri(storage), options)
    stored = read_text(launch.path, GRID_RECORD)
    if stored is not None and json.loads(stored)["fingerprint"] != grid_fingerprint(trials, study, profile):
        raise ValueError(f"{launch.path} holds a different trial grid; pass another --storage or remove that folder")
    restoring = tune.Tuner.can_restore(launch.path)
    if options.resume and not restoring:
        raise ValueError(f"nothing to resume at {launch.path}: no experiment state there")
    if restoring:
        verified_state(launch.path)  # SealBroken (a ValueError) before Ray starts
    return launch


def other_store(launch: Launch, launched: str) -> str:
    """Why a restore naming another store than its launch's is refused, and the two ways on."""
    return (
        f"{launch.path} was launched tracking into {launched}, but this run names {launch.tracking_uri}: "
        f"pass --tracking-uri {shlex.quote(launched)} to continue it (copy its results into the other store "
        f"afterwards with: reslab tracking sync {shlex.quote(launch.path)} --tracking-uri "
        f"{shlex.quote(launch.tracking_uri)})"
    )
