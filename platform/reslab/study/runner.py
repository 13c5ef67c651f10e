"""Runs a `Study` on Ray Tune: one trial per variant x seed, on an embedded local Ray by default or
on the cluster the driver runs in (RAY_ADDRESS set, or started by `ray submit`).

Trials checkpoint at every report and are retried from their last checkpoint when a worker dies
(FailureConfig); running the same command again after the driver died restores the experiment, so
finished trials are not re-run. A trial whose loss diverges ends as "diverged" and the study goes on.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import pandas as pd

from ..data.fetch import check_source
from ..models import get_model_info
from ..tracking import TrackingUnavailable, check_reachable, prepare_store, resolve_tracking_uri
from ..tracking.layout import RESPONSES_ARTIFACT
from ..training import TrainConfig
from .preflight import (
    check_data_here,
    check_data_on_nodes,
    check_storage_is_shared,
    cluster_address,
    describe_cluster,
    ray_init,
)
from .spec import Study, Trial, trial_label, variant_label
from .summary import (
    TrialOutcome,
    response_table,
    responses_markdown,
    search_markdown,
    search_table,
    summarize,
    to_markdown,
)
from .trial import MAX_FAILURES, train_trial, trial_config

# at a study's end, how long to wait for a tracking server that is away (one restarting takes ~30 s)
STORE_WAIT_S = float(os.environ.get("RESLAB_STORE_WAIT_S", "120"))
COORDINATOR_MEMORY = 256 * 2**20  # bytes reserved for a data-parallel trial's coordinating function


def gpu_fraction(config: TrainConfig) -> float:
    """The share of one GPU a trial needs, so that small CIFAR nets pack several to a GPU."""
    info = get_model_info(config.model)
    depth = config.depth or info.depth or 0
    if info.family == "imagenet" or depth > 110:
        return 1.0
    return 0.5 if depth > 56 else 0.25


def trial_resources(config: TrainConfig, cluster_gpus: float, gpus_per_trial: float | None) -> dict[str, float]:
    """Ray resources for one trial: a GPU share where the cluster has GPUs, else one CPU. A data-parallel
    trial's function only coordinates (its Ray Train workers ask for a CPU or GPU each), so it asks for
    no CPU, only memory (Ray needs a non-empty request)."""
    if config.data_parallel > 1:
        return {"memory": COORDINATOR_MEMORY}
    gpus = gpus_per_trial if gpus_per_trial is not None else (gpu_fraction(config) if cluster_gpus else 0.0)
    return {"CPU": 1.0, "GPU": gpus} if gpus else {"CPU": 1.0}


@dataclass(frozen=True)
class StudyRun:
    """What a finished study leaves: every trial's outcome and the summary table."""

    path: str  # the experiment folder (local path or URI)
    outcomes: list[TrialOutcome]
    table: pd.DataFrame


def experiment_name(study: Study, profile: str) -> str:
    return f"{study.name}-{profile}"


def grid_fingerprint(trials: list[Trial], study: Study, profile: str) -> str:
    """A hash of the trial grid (and search), so a restore never silently continues a different one."""
    search = None if study.search is None else [repr(study.search), study.search.samples.get(profile)]
    blob = json.dumps([[t.config.to_dict() for t in trials], search, study.layer_responses], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _filesystem(uri: str):
    import pyarrow.fs

    return pyarrow.fs.FileSystem.from_uri(uri)


def _write_text(folder: str, name: str, text: str) -> None:
    fs, path = _filesystem(folder)
    fs.create_dir(path, recursive=True)
    with fs.open_output_stream(f"{path}/{name}") as out:
        out.write(text.encode())


def _read_text(folder: str, name: str) -> str | None:
    import pyarrow.fs

    fs, path = _filesystem(folder)
    if fs.get_file_info(f"{path}/{name}").type == pyarrow.fs.FileType.NotFound:
        return None
    with fs.open_input_stream(f"{path}/{name}") as stream:
        return stream.read().decode()


def _storage_uri(storage: str | os.PathLike) -> str:
    text = str(storage)
    return text if "://" in text else str(Path(text).resolve())


def _outcome(result: Any, searching: bool) -> TrialOutcome:
    trial = result.config["trial"]
    metrics = result.metrics or {}
    iterations = int(metrics.get("iteration", 0) or 0)
    planned = trial["config"]["recipe"]["iterations"]
    if result.error is not None:
        status, reason = "failed", f"{type(result.error).__name__}: {result.error}".splitlines()[0]
    elif metrics.get("failed"):
        status, reason = "failed", metrics.get("failed_reason", "")
    elif metrics.get("diverged"):
        status, reason = "diverged", metrics.get("diverged_reason", "")
    elif iterations < planned and searching:
        status, reason = "stopped", f"stopped early by ASHA at iteration {iterations} of {planned}"
    elif iterations < planned:
        status, reason = "failed", f"stopped at iteration {iterations} of {planned}"
    else:
        status, reason = "finished", ""
    return TrialOutcome(
        label=trial_label(result.config),
        seed=trial["seed"],
        iterations=iterations,
        train_error=float(metrics.get("train_error", math.nan)),
        test_error=float(metrics.get("test_error", math.nan)),
        status=status,
        reason=reason,
        params=dict(result.config.get("sampled") or {}),
    )


def run_study(
    study: Study,
    *,
    profile: str = "smoke",
    data_dir: str | None = None,
    storage: str | os.PathLike = "runs",
    resume: bool = False,
    max_concurrent_trials: int | None = None,
    gpus_per_trial: float | None = None,
    tracking_uri: str | None = None,
    out: TextIO = sys.stdout,
    verbose: bool = False,
    shared_storage: bool = False,
    allow_cpu_fallback: bool = False,
    data_source: str | None = None,
) -> StudyRun:
    """Validate, then run (or restore) the study on Ray Tune, tracked in MLflow, and write its summary."""
    from ray import tune

    from ..tracking.store import artifact_location
    from ..tracking.writer import MLflowWriter
    from .sync import LAUNCH_RECORD
    from .tracking_callback import MLflowTracking

    study.validate(profile, data_dir)
    if data_dir and not data_dir.startswith("~"):  # trials run in folders of their own: a relative path breaks
        data_dir = str(Path(data_dir).absolute())  # "~" stays: it means each node's own home
    trials = study.trials(profile, data_dir)
    address = cluster_address()
    if data_source:
        check_source(data_source)  # each trial copies it to --data-dir on its node when that lacks it
    elif address is None:
        check_data_here(trials)  # before Ray starts or anything is written: the trials read the data here
    tracking_uri = resolve_tracking_uri(tracking_uri)
    check_reachable(tracking_uri)  # a server that is down fails the launch before any trial starts
    storage_uri = _storage_uri(storage)
    name = experiment_name(study, profile)
    path = f"{storage_uri}/{name}"
    fingerprint = grid_fingerprint(trials, study, profile)
    stored = _read_text(path, "grid.json")
    if stored is not None and json.loads(stored)["fingerprint"] != fingerprint:
        raise ValueError(f"{path} holds a different trial grid; pass another --storage or remove that folder")
    if resume and not tune.Tuner.can_restore(path):
        raise ValueError(f"nothing to resume at {path}: no experiment state there")

    ray_init(address, verbose)
    if address is not None and not data_source:
        check_data_on_nodes(trials)  # where the trials will read it, before any trial starts
        check_storage_is_shared(tracking_uri, storage_uri, shared_storage)
    prepare_store(tracking_uri)
    where, cluster_gpus = describe_cluster(address)
    print(f"{name}: {len(trials)} trials on {where}", file=out)
    print(f"tracking: {tracking_uri}   storage: {path}", file=out, flush=True)
    trainable = tune.with_resources(train_trial, _resources_fn(cluster_gpus, gpus_per_trial))
    if tune.Tuner.can_restore(path):
        print(f"restoring {path}: finished trials are kept, unfinished ones resume", file=out)
        tuner = tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=True)
    else:
        _write_text(path, "grid.json", json.dumps({"fingerprint": fingerprint, "trials": len(trials)}))
        record = launch_record(study, profile, trials)
        _write_text(path, LAUNCH_RECORD, json.dumps(record, indent=2, default=str))
        writer = MLflowWriter(tracking_uri, name, record["tags"], record["definition"], artifact_location(tracking_uri))
        tracking = MLflowTracking(writer)
        tuner = _new_tuner(
            trainable, study, profile, trials, name, storage_uri, max_concurrent_trials, cluster_gpus, tracking,
            verbose, {"allow_cpu_fallback": allow_cpu_fallback, "data_source": data_source},
        )  # fmt: skip
    results = tuner.fit()
    outcomes = [_outcome(result, study.search is not None) for result in results]
    if _sync_tracking(path, tracking_uri, results, out):
        _register_models(tracking_uri, name, results, {"study": study.name, "profile": profile}, out)
    if study.search is None:
        table = summarize(outcomes, study.paper, order=[variant_label(v) for v in study.variants])
        markdown = to_markdown(table, f"{study.title} — profile {profile}")
    else:
        table = search_table(outcomes)
        markdown = search_markdown(table, f"{study.title} — profile {profile}")
    _write_text(path, "summary.csv", table.to_csv(index=False))
    responses = response_table(results)
    if not responses.empty:
        _write_text(path, RESPONSES_ARTIFACT, responses.to_csv(index=False))
        markdown += "\n" + responses_markdown(responses, [variant_label(v) for v in study.variants])
    _write_text(path, "summary.md", markdown)
    print(markdown, file=out)
    print(f"results: {path} (summary.md, summary.csv; Ray Tune's trial folders)", file=out)
    print(f"dashboard: reslab dashboard --tracking-uri {tracking_uri}", file=out)
    return StudyRun(path, outcomes, table)


def _sync_tracking(path: str, uri: str, results: Any, out: TextIO) -> bool:
    """Deliver to MLflow what it missed while it did not answer (nothing, normally). False when the store
    still does not answer: the results stay in Ray's storage and the message says how to sync later."""
    from .sync import sync_experiment

    if not _store_answers(uri, STORE_WAIT_S):
        print(f"MLflow store {uri} does not answer; waited {STORE_WAIT_S:.0f} s for it", file=out)
    finished = {r.metrics["trial_id"]: r.error is None for r in results if r.metrics and "trial_id" in r.metrics}
    try:
        synced = sync_experiment(path, uri, finished)  # a cloud folder: its reports, not its checkpoints, are read
    except Exception as error:  # the store is still away; everything is in Ray's storage
        reason = f"{type(error).__name__}: {error}".splitlines()[0][:300]
        print(
            f"MLflow store {uri} does not answer ({reason}): the study's results are complete in {path}; "
            f"when the store is back run: reslab tracking sync {path} --tracking-uri {uri}",
            file=out,
        )
        return False
    if synced.steps_logged or synced.runs_created:
        print(f"synced to MLflow what it missed: {synced}", file=out)
    return True


def _store_answers(uri: str, wait_s: float) -> bool:
    """Whether a tracking server answers within `wait_s` (a server being restarted takes ~30 s to come
    back); a local store always does."""
    import time

    deadline = time.monotonic() + wait_s
    while True:
        try:
            check_reachable(uri, timeout=5)
            return True
        except TrackingUnavailable:
            if time.monotonic() > deadline:
                return False
            time.sleep(2)


def _register_models(uri: str, experiment: str, results: Any, tags: dict[str, str], out: TextIO) -> None:
    """Register each configuration's best net; a registry failure is reported, the results stay."""
    from ..tracking.registry import register_study_models

    trial_ids = [r.metrics.get("trial_id") for r in results if r.metrics]
    try:
        versions = register_study_models(uri, experiment, trial_ids, {**tags, "experiment": experiment})
    except Exception as error:  # the study's results are already saved; say what failed
        print(f"models not registered: {type(error).__name__}: {error}".splitlines()[0], file=out)
        return
    for registered, version in versions.items():
        print(f"registered models:/{registered}/{version} (alias @best)", file=out)


def launch_record(study: Study, profile: str, trials: list[Trial]) -> dict[str, Any]:
    """What a launch records about itself: provenance tags (command, commit, versions) and the study's
    definition (variant order, the paper's numbers, every trial's config). MLflow's parent run carries
    both; a copy beside grid.json lets `reslab tracking sync` rebuild them into a store that lost them."""
    import platform as python_platform
    import subprocess

    import torch

    from .. import __version__

    try:  # the commit of reslab's own source (not of the working directory); "unknown" when not in a checkout
        source = str(Path(__file__).resolve().parent)
        found = subprocess.run(["git", "-C", source, "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
        commit = found.stdout.strip()
    except OSError:
        commit = ""
    tags = {
        "git_commit": commit or "unknown",
        "profile": profile,
        "reslab_version": __version__,
        "torch_version": torch.__version__,
        "python_version": python_platform.python_version(),
        "command": " ".join(sys.argv),
        "study": study.name,
    }
    definition = {
        "study": study.name,
        "title": study.title,
        "profile": profile,
        "variants": [variant_label(v) for v in study.variants],  # the order the paper's tables use
        "paper": dict(study.paper),  # the paper's test error (%) by variant, for tables beside ours
        "metric": study.metric,
        "trials": [{"label": t.label, "seed": t.seed, "config": t.config.to_dict()} for t in trials],
    }
    return {"tags": tags, "definition": definition}


def _resources_fn(cluster_gpus: float, gpus_per_trial: float | None) -> Callable[[dict], Any]:
    from ray.tune import PlacementGroupFactory

    def resources(params: dict) -> PlacementGroupFactory:
        config = trial_config(params)
        return PlacementGroupFactory([trial_resources(config, cluster_gpus, gpus_per_trial)])

    return resources


def _new_tuner(
    trainable: Any,
    study: Study,
    profile: str,
    trials: list[Trial],
    name: str,
    storage: str,
    max_concurrent: int | None,
    gpus: float,
    tracking: Any,
    verbose: bool = False,
    node_options: dict[str, Any] | None = None,
) -> Any:
    """A Tuner over the study's grid, or, for a search study, over Optuna's samples with ASHA stopping."""
    from ray import tune

    from .console import ConsoleReport

    point = {
        "layer_responses": study.layer_responses,
        "storage": storage,
        "gpus_per_worker": gpus,
        # what a trial does on a node that lacks something: a GPU torch cannot use (train on the CPU if
        # allow_cpu_fallback), the data folder (copy it from data_source)
        **(node_options or {}),
    }
    points = [{"label": t.label, "seed": t.seed, "config": t.config.to_dict(), **point} for t in trials]

    def trial_name(trial: Any) -> str:
        return f"{trial_label(trial.config)}-seed{trial.config['trial']['seed']}"

    names = {"trial_name_creator": trial_name, "trial_dirname_creator": lambda t: f"{trial_name(t)}-{t.trial_id}"}
    if study.search is None:
        param_space = {"trial": tune.grid_search(points)}
        tune_config = tune.TuneConfig(max_concurrent_trials=max_concurrent, **names)
    else:
        param_space = {"trial": points[0], "sampled": {k: tune.loguniform(*v) for k, v in study.search.space.items()}}
        tune_config = _search_config(study, profile, trials[0].config.recipe.iterations, max_concurrent, names)
    return tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune_config,
        run_config=tune.RunConfig(
            name=name,
            storage_path=storage,
            failure_config=tune.FailureConfig(max_failures=MAX_FAILURES),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            callbacks=[tracking, ConsoleReport()],
            verbose=2 if verbose else 0,  # Ray Tune's own status table and trial dumps, behind --verbose
        ),
    )


def _search_config(study: Study, profile: str, iterations: int, max_concurrent: int | None, names: dict) -> Any:
    """Optuna TPE (seeded, so a search is repeatable) proposing trials, ASHA stopping the weak ones."""
    import optuna
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    search = study.search
    return tune.TuneConfig(
        metric=study.metric,
        mode="min",
        search_alg=OptunaSearch(sampler=optuna.samplers.TPESampler(seed=0)),
        scheduler=ASHAScheduler(
            time_attr="iteration",
            max_t=iterations,
            grace_period=max(1, round(search.grace_fraction * iterations)),
            reduction_factor=search.reduction_factor,
        ),
        num_samples=search.samples.get(profile, 1),
        max_concurrent_trials=max_concurrent,
        **names,
    )
