"""Runs a `Study` on Ray Tune: one trial per variant x seed, on an embedded local Ray by default or
on the cluster the driver runs in (RAY_ADDRESS set, or started by `ray submit`).

Trials checkpoint at every report and are retried from their last checkpoint when a worker dies
(FailureConfig); running the same command again after the driver died restores the experiment, so
finished trials are not re-run. A trial whose loss diverges ends as "diverged" and the study goes on.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shlex
import sys
from dataclasses import dataclass, replace
from typing import Any, TextIO

import pandas as pd

from ..results.summary import (
    FINAL_TESTS,
    TrialOutcome,
    late_mean,
    response_table,
    responses_markdown,
    search_markdown,
    search_table,
    summarize,
    to_markdown,
)
from ..results.verdicts import judge_claims, untestable_reason, verdict_table, verdicts_markdown
from ..store.layout import GRID_RECORD, LAUNCH_RECORD, RESPONSES_FILE, SUMMARY_TABLE, SUMMARY_TEXT, VERDICTS_FILE
from ..store.lock import driver_lock
from ..store.seal import restore_sealed, seal_tuner_state, verified_state
from ..store.storage import StorageFault, storage_fault, write_text
from ..study import Study, variant_label
from ..study.identity import grid_fingerprint
from ..tracking import TrackingUnavailable, check_reachable, prepare_store
from ..tracking.trials import error_reason, trial_record
from ..training import paper_recipe
from .options import RunOptions
from .preflight import (
    bootstrap_config,
    check_data_on_nodes,
    check_storage_is_shared,
    describe_cluster,
    ray_init,
)
from .prepare import Launch, other_store, prepare_launch
from .provenance import launch_record
from .resources import resources_fn, unschedulable
from .search_journal import fetch_journal, publish_journal
from .trial import train_trial
from .tuner import new_tuner

log = logging.getLogger(__name__)
SYNC_ATTEMPTS = 8  # a sync, a registration or the verdicts sent again after a store's failure (all idempotent)


@dataclass(frozen=True)
class StudyRun:
    """What a finished study leaves: every trial's outcome and the summary table."""

    path: str  # the experiment folder (local path or URI)
    outcomes: list[TrialOutcome]
    table: pd.DataFrame
    verdicts: pd.DataFrame  # one row per claim of the study (`claims.verdict_table`)
    interrupted: bool = False  # the study stopped (Ctrl-C) before every trial ended: running it again resumes it
    untracked: bool = False  # the MLflow store could not be brought up to date: `reslab tracking sync` later


def schedule_fraction(config: dict[str, Any], planned: int) -> float:
    """The part of the paper's schedule a trial's recipe trains, in images seen (iterations x batch)."""
    paper = paper_recipe(config["model"], config.get("depth"))
    batch = config.get("recipe", {}).get("batch_size", paper.batch_size)
    return planned * batch / (paper.iterations * paper.batch_size)


def _outcome(result: Any) -> TrialOutcome:
    """A trial's outcome from Tune's result, classified as its MLflow run is (`TrialRecord.status`)."""
    record = trial_record(result.metrics.get("trial_id", "") if result.metrics else "", result.config)
    metrics = result.metrics or {}
    error = error_reason(result.error) if result.error is not None else None
    status, reason = record.status(metrics, error)
    history = result.metrics_dataframe
    late, curves = {}, {}
    if history is not None and "iteration" in history:  # a restored trial re-reports steps: keep each once
        history = history.drop_duplicates("iteration", keep="last")
        for key in ("train_error", "test_error"):
            if key in history:
                late[f"{key}_late"] = late_mean(list(history["iteration"]), list(history[key]), record.planned)
                curves[key] = tuple(zip(map(int, history["iteration"]), map(float, history[key]), strict=True))
    config = record.config
    responses = metrics.get("layer_responses") or []
    return TrialOutcome(
        label=record.label,
        seed=record.seed,
        iterations=int(metrics.get("iteration", 0) or 0),
        train_error=float(metrics.get("train_error", math.nan)),
        test_error=float(metrics.get("test_error", math.nan)),
        validation_error=float(metrics.get("validation_error", math.nan) or math.nan),
        **{m: float(metrics.get(m, math.nan) or math.nan) for m in FINAL_TESTS},
        status=status,
        reason=reason,
        params=dict(record.sampled),
        response_std=sum(responses) / len(responses) if responses else math.nan,
        **late,
        schedule=schedule_fraction(config, record.planned),
        train_images=int(metrics.get("train_images", 0) or 0),
        dataset=config.get("dataset", ""),
        curves=curves,
    )


def run_study(
    study: Study,
    profile: str = "smoke",
    *,
    storage: str | os.PathLike = "runs",
    tracking_uri: str | None = None,
    options: RunOptions | None = None,
    out: TextIO = sys.stdout,
) -> StudyRun:
    """Validate, then run (or restore) the study on Ray Tune, tracked in MLflow, and write its summary:
    prepare -> lock (one driver per experiment, `store/lock.py`) -> tune -> finish."""
    launch = prepare_launch(study, profile, storage, tracking_uri, options or RunOptions())
    with driver_lock(launch.path):
        return _run(launch, out)


def _run(launch: Launch, out: TextIO) -> StudyRun:
    """Run the prepared launch: Ray up, the cluster checked, the Tuner fitted, the results synced and summed up."""
    options = launch.options
    ray_init(launch.address, options.verbose)
    if launch.address is not None and not options.data_source:
        check_data_on_nodes(launch.trials)  # where the trials will read it, before any trial starts
        check_storage_is_shared(launch.tracking_uri, launch.storage_uri, options.shared_storage)
    where, cluster_gpus = describe_cluster(launch.address)
    if problem := unschedulable(launch.trials, cluster_gpus, options.gpus_per_trial, where):
        if launch.address is None or bootstrap_config():  # nothing can join beyond what the autoscaler adds
            raise ValueError(problem)  # Tune would leave the trial PENDING for ever
        print(f"warning: {problem}; its trials wait for a node that has it to join", file=out)
    print(f"{launch.name}: {len(launch.trials)} trials on {where}", file=out)
    tuner = _tuner(launch, cluster_gpus, out)
    prepare_store(launch.tracking_uri)  # after a restore is checked: a refused one creates no store
    print(f"tracking: {launch.tracking_uri}   storage: {launch.path}", file=out, flush=True)
    try:
        results = tuner.fit()
        tracked = _sync_tracking(launch, results, out)
        if tracked:
            tags = {"study": launch.study.name, "profile": launch.profile}
            _register_models(launch.tracking_uri, launch.name, results, tags, out)
        run = _summarize(launch, results, out)
    except Exception as error:
        if (fault := storage_fault(launch.path)) is None:
            raise
        _sync_after_fault(launch)
        raise StorageFault(  # what Tune raised then (a file it wrote cut short) is a consequence, not news
            f"storage {fault} at {launch.path}: free space (or make it writable) and run the study again with "
            "--resume; each trial continues from its last checkpoint"
        ) from error
    if tracked and not run.verdicts.empty:
        _record_verdicts(launch, run.verdicts, out)
    return replace(run, untracked=not tracked)


def _sync_after_fault(launch: Launch) -> None:
    """Close the MLflow runs of a study its storage stopped, from the reports Ray's storage kept (best effort:
    the store may be on the same full disk). Trials Tune marked errored stay failed; none is promoted."""
    from ..tracking.sync import sync_experiment

    with contextlib.suppress(Exception):
        sync_experiment(launch.path, launch.tracking_uri)


def check_restored_store(tuner: Any, launch: Launch) -> None:
    """The store a restored Tuner's tracking callback writes to (pickled with the experiment, whatever
    launch.json says or whether it is there) must be the one this run names: else the console would print one
    store while every live write went to another. Refused before anything is written to either."""
    from .callbacks import MLflowTracking

    callbacks = tuner._local_tuner.get_run_config().callbacks or []  # Ray 2.x keeps the restored RunConfig here
    for launched in {c.uri for c in callbacks if isinstance(c, MLflowTracking)} - {launch.tracking_uri}:
        raise ValueError(other_store(launch, launched))


def _tuner(launch: Launch, cluster_gpus: float, out: TextIO) -> Any:
    """The experiment's Tuner: restored from its storage (finished trials kept), or a new launch that
    records its grid and provenance beside Tune's files and tracks into MLflow."""
    from ray import tune

    from ..tracking.store import artifact_location
    from ..tracking.writer import MLflowWriter
    from .callbacks import MLflowTracking, StateSeal

    trainable = tune.with_resources(train_trial, resources_fn(cluster_gpus, launch.options.gpus_per_trial))
    if tune.Tuner.can_restore(launch.path):
        # Tune restores exactly the files reslab sealed, nothing planted or cut short
        if replaced := restore_sealed(launch.path, verified_state(launch.path)):
            print(
                f"{', '.join(replaced)} in {launch.path} differed from what reslab sealed (cut short by a full "
                "disk, or altered): restored from the sealed copy",
                file=out,
            )
        print(f"restoring {launch.path}: finished trials are kept, unfinished ones resume", file=out)
        if launch.study.search is not None:
            fetch_journal(launch.path)  # the restored searcher reopens its Optuna journal
        tuner = tune.Tuner.restore(launch.path, trainable, resume_unfinished=True, resume_errored=True)
        check_restored_store(tuner, launch)
        return tuner
    study, profile, trials = launch.study, launch.profile, launch.trials
    fingerprint = grid_fingerprint(trials, study, profile)
    write_text(launch.path, GRID_RECORD, json.dumps({"fingerprint": fingerprint, "trials": len(trials)}))
    record = {**launch_record(study, profile, trials), "tracking_uri": launch.tracking_uri}
    write_text(launch.path, LAUNCH_RECORD, json.dumps(record, indent=2, default=str))
    location = artifact_location(launch.tracking_uri)
    writer = MLflowWriter(launch.tracking_uri, launch.name, record["tags"], record["definition"], location)
    tuner = new_tuner(trainable, launch, cluster_gpus, [MLflowTracking(writer), StateSeal(launch.path)])
    seal_tuner_state(launch.path)  # the Tuner wrote tuner.pkl just now
    return tuner


def _summarize(launch: Launch, results: Any, out: TextIO) -> StudyRun:
    """Each trial's outcome, the paper-shaped table (or a search's), Fig. 7's responses and the verdict on
    each of the study's claims: written beside the experiment (summary.csv, summary.md, verdicts.csv) and
    printed. A run on synthetic data is not set beside the paper's numbers."""
    study = launch.study
    started = [result for result in results if result.config]  # an interrupted study leaves some never started
    outcomes = [_outcome(result) for result in started]
    title = f"{study.title} — profile {launch.profile}"
    dataset = launch.trials[0].config.dataset
    order = [variant_label(v) for v in study.variants]
    untestable = untestable_reason(launch.profile, dataset)
    if study.search is None:
        comparable = not untestable  # a smoke run (or synthetic data) is not set beside the paper's numbers
        table = summarize(outcomes, study.paper if comparable else {}, order, study.paper_more if comparable else {})
        markdown = to_markdown(table, title)
        if not comparable:
            markdown += f"\nNo comparison with the paper's numbers: {untestable}.\n"
    else:
        table = search_table(outcomes)
        markdown = search_markdown(table, title)
    write_text(launch.path, SUMMARY_TABLE, table.to_csv(index=False))
    responses = response_table(started)
    if not responses.empty:
        write_text(launch.path, RESPONSES_FILE, responses.to_csv(index=False))
        markdown += "\n" + responses_markdown(responses, order)
    verdicts = judge_claims(study.claims, outcomes, untestable)
    if verdicts:
        write_text(launch.path, VERDICTS_FILE, verdict_table(verdicts).to_csv(index=False))
        markdown += "\n" + verdicts_markdown(verdicts)
    unfinished = interruption_note(outcomes, len(results))
    if unfinished:
        markdown += "\n" + unfinished
    write_text(launch.path, SUMMARY_TEXT, markdown)
    print(markdown, file=out)
    print(f"results: {launch.path} (summary.md, summary.csv; Ray Tune's trial folders)", file=out)
    print(f"dashboard: reslab dashboard --tracking-uri {launch.tracking_uri}", file=out)
    if study.search is not None:
        print(f"search: optuna-dashboard {publish_journal(launch.path)}", file=out)
    return StudyRun(launch.path, outcomes, table, verdict_table(verdicts), interrupted=bool(unfinished))


def interruption_note(outcomes: list[TrialOutcome], trials: int) -> str:
    """What an interrupted study left undone, and how to continue it; empty when every trial ended."""
    interrupted = [o for o in outcomes if o.status == "interrupted"]
    never_started = trials - len(outcomes)
    if not interrupted and not never_started:
        return ""
    parts = [f"{len(interrupted)} interrupted ({', '.join(o.reason for o in interrupted)})"] if interrupted else []
    parts += [f"{never_started} never started"] if never_started else []
    return (
        f"The study was interrupted: of {trials} trials, {' and '.join(parts)}. Their verdicts wait for them: "
        "run the same command again to resume it (finished trials are kept).\n"
    )


def _record_verdicts(launch: Launch, verdicts: pd.DataFrame, out: TextIO) -> None:
    """The verdicts on the launch's MLflow run (tags and verdicts.csv), for the dashboard and the scorecard;
    a store that fails now is reported, the verdicts stay in verdicts.csv."""
    from ..tracking.writer import MLflowWriter

    try:
        _retried(lambda: MLflowWriter(launch.tracking_uri, launch.name, {}, {}).record_verdicts(verdicts))
    except Exception as error:  # the verdicts are already written beside the experiment
        print(f"verdicts not recorded in MLflow: {error_reason(error)}", file=out)


def _sync_tracking(launch: Launch, results: Any, out: TextIO) -> bool:
    """Deliver to MLflow what it missed while it did not answer or lost answers (nothing, normally), trying a
    few times: every write is idempotent, so a sync cut short by a flaky server is simply run again. False
    when the store still does not answer: the results stay in Ray's storage and the message says how to
    sync later. What could not be delivered (a damaged report, a net that would not log) is named."""
    from ..tracking.sync import sync_experiment

    path, uri, wait_s = launch.path, launch.tracking_uri, launch.options.store_wait_s
    if not _store_answers(uri, wait_s):
        print(f"MLflow store {uri} does not answer; waited {wait_s:.0f} s for it", file=out)
    finished = {r.metrics["trial_id"]: r.error is None for r in results if r.metrics and "trial_id" in r.metrics}
    try:
        synced = _retried(lambda: sync_experiment(path, uri, finished, driver_gone=True))  # this driver ends
    except Exception as error:  # the store is still away or keeps failing; everything is in Ray's storage
        reason = f"{type(error).__name__}: {error}".splitlines()[0][:300]
        print(
            f"MLflow store {uri} did not take the study's results ({reason}); they are complete in {path}: "
            f"when the store is back run: reslab tracking sync {shlex.quote(path)} --tracking-uri {shlex.quote(uri)}",
            file=out,
        )
        return False
    if synced.steps_logged or synced.runs_created or synced.problems:
        print(f"synced to MLflow what it missed: {synced}", file=out)
    return True


def _retried(write: Any, attempts: int = SYNC_ATTEMPTS) -> Any:
    """`write()`, run again (after a second) when it raises, up to `attempts` times: for idempotent writes only.
    Each try keeps what the last one wrote, so through a store that loses answers the tries converge."""
    import time

    for attempt in range(1, attempts + 1):
        try:
            return write()
        except Exception as error:
            log.debug("try %d of %d failed: %s", attempt, attempts, error_reason(error))
            if attempt == attempts:
                raise
            time.sleep(1.0)
    return None


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
        versions = _retried(
            lambda: register_study_models(uri, experiment, trial_ids, {**tags, "experiment": experiment})
        )
    except Exception as error:  # the study's results are already saved; say what failed
        print(f"models not registered: {type(error).__name__}: {error}".splitlines()[0], file=out)
        return
    for registered, version in versions.items():
        print(f"registered models:/{registered}/{version} (alias @best)", file=out)
