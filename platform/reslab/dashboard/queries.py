"""What the dashboard shows, read from MLflow as plain DataFrames (the pages only lay them out).

Every function takes the tracking URI and returns pandas objects, so tests call them directly and the
Streamlit app caches them at this I/O boundary. Errors are fractions in MLflow and percent here, as
the paper gives them.
"""

from __future__ import annotations

import io
import json
import logging
import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ..results.summary import FINAL_TESTS, TrialOutcome, summarize
from ..results.verdicts import TESTING_PROFILES
from ..tracking.catalog import latest_launch, number, registered_versions, whole_number
from ..tracking.layout import (
    CURVE_METRICS,
    LAUNCH_TAG,
    RESPONSES_ARTIFACT,
    RUNTIME_TAG,
    STUDY_ARTIFACT,
    TRIAL_TAG,
    VARIANT_TAG,
    pull_command,
    run_status,
)

logger = logging.getLogger(__name__)


class StoreUnavailable(ConnectionError):
    """The tracking store cannot be read; the message names its URI."""


def client_for(uri: str) -> Any:
    """An MLflow client for `uri`, after checking a server answers (a clear error instead of a hang)."""
    from mlflow import MlflowClient

    from ..tracking import TrackingUnavailable, check_reachable

    try:
        check_reachable(uri, timeout=3.0)
    except TrackingUnavailable as error:
        raise StoreUnavailable(str(error)) from error
    return MlflowClient(uri, registry_uri=uri)


@dataclass(frozen=True)
class StudyDefinition:
    """What a launch recorded about its study: title, variant order and the paper's numbers."""

    experiment: str
    title: str = ""
    profile: str = ""
    variants: list[str] = field(default_factory=list)
    paper: dict[str, float] = field(default_factory=dict)
    paper_more: dict[str, dict[str, float]] = field(default_factory=dict)  # top-5, Table 4: metric -> variant
    planned: dict[str, int] = field(default_factory=dict)  # trial label-seed -> planned iterations
    provenance: dict[str, str] = field(default_factory=dict)  # the launch's command, commit and versions


PROVENANCE_TAGS = ("command", "git_commit", "reslab_version", "torch_version", "python_version")


def list_studies(uri: str) -> pd.DataFrame:
    """One row per reslab study in the store: trial counts by status and progress in percent."""
    client = client_for(uri)
    rows = []
    for experiment in client.search_experiments():
        runs = client.search_runs([experiment.experiment_id], max_results=50_000)
        launches = [r for r in runs if r.data.tags.get(LAUNCH_TAG) == "true"]
        trials = [r for r in runs if TRIAL_TAG in r.data.tags]
        if not launches:
            continue  # not a reslab study
        statuses = pd.Series([_status(r) for r in trials], dtype="object")
        progress = [_progress(client, r) for r in trials]
        rows.append(
            {
                "study": experiment.name,
                "trials": len(trials),
                "finished": int((statuses == "finished").sum()),
                "running": int((statuses == "running").sum()),
                "diverged": int((statuses == "diverged").sum()),
                "stopped": int((statuses == "stopped").sum()),
                "interrupted": int((statuses == "interrupted").sum()),
                "failed": int((statuses == "failed").sum()),
                "progress %": round(100 * sum(progress) / len(progress), 1) if progress else 0.0,
                "launches": len(launches),
                "last launch": pd.Timestamp(max(r.info.start_time for r in launches), unit="ms"),
            }
        )
    columns = [
        "study", "trials", "finished", "running", "diverged", "stopped", "interrupted", "failed", "progress %",
        "launches", "last launch",
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=columns).sort_values("last launch", ascending=False, ignore_index=True)


def experiment_of(client: Any, uri: str, experiment: str) -> Any:
    """The MLflow experiment of a study, or a LookupError naming the study and the store."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        names = sorted(e.name for e in client.search_experiments() if e.name != "Default")
        raise LookupError(f"no study {experiment!r} in {uri}; studies there: {', '.join(names) or 'none'}")
    return found


def _status(run: Any) -> str:
    return run_status(run.info.status, run.data.tags)


def _progress(client: Any, run: Any) -> float:
    """Share of the planned iterations a trial has done: 1 once it ended, else its last logged step."""
    if run.info.status != "RUNNING":
        return 1.0
    try:
        planned = number(run.data.params, "recipe.iterations", 0.0)
    except ValueError:
        return 0.0  # trial_runs names the run it skips
    history = client.get_metric_history(run.info.run_id, "test_error")
    return min(max((m.step for m in history), default=0) / planned, 1.0) if planned else 0.0


def study_definition(uri: str, experiment: str) -> StudyDefinition:
    """The study's definition from its latest launch's `study.json` (variants in the paper's order)."""
    client = client_for(uri)
    found = experiment_of(client, uri, experiment)
    launch = latest_launch(client, found.experiment_id)
    if launch is None:
        return StudyDefinition(experiment)
    from mlflow.artifacts import load_text

    tags = launch.data.tags
    provenance = {key: tags[key] for key in PROVENANCE_TAGS if key in tags}
    try:
        values = json.loads(load_text(f"{launch.info.artifact_uri}/{STUDY_ARTIFACT}"))
    except Exception:  # a launch without its definition: show the runs anyway
        return StudyDefinition(experiment, provenance=provenance)
    try:
        return _definition(experiment, values, provenance)
    except (AttributeError, KeyError, TypeError, ValueError) as problem:  # written by hand, or by another tool
        logger.warning("%s: the launch's %s is malformed (%r); showing the runs without it", experiment,
                       STUDY_ARTIFACT, problem)  # fmt: skip
        return StudyDefinition(experiment, provenance=provenance)


def _definition(experiment: str, values: dict[str, Any], provenance: dict[str, str]) -> StudyDefinition:
    """A StudyDefinition from a launch's parsed `study.json`, every field checked for its type."""
    planned = {
        f"{t['label']}-seed{t['seed']}": int(t["config"]["recipe"]["iterations"]) for t in values.get("trials", [])
    }
    paper = values.get("paper", {})
    more = values.get("paper_more", {})
    return StudyDefinition(
        experiment,
        title=str(values.get("title", "")),
        profile=str(values.get("profile", "")),
        variants=[str(v) for v in values.get("variants", [])],
        paper={str(k): number(paper, k) for k in paper},
        paper_more={str(m): {str(k): number(by, k) for k in by} for m, by in more.items()},
        planned=planned,
        provenance=provenance,
    )


def trial_runs(uri: str, experiment: str) -> pd.DataFrame:
    """One row per trial run: variant, seed, status, final errors (%), iterations done, run id."""
    client = client_for(uri)
    found = experiment_of(client, uri, experiment)
    rows = []
    for run in client.search_runs([found.experiment_id], max_results=50_000):
        if TRIAL_TAG not in run.data.tags:
            continue
        metrics, params = run.data.metrics, run.data.params
        try:
            seed, iterations = whole_number(params, "seed"), whole_number(params, "recipe.iterations")
        except ValueError as problem:
            logger.warning("skipping run %s of %s: its param %s", run.info.run_name, experiment, problem)
            continue
        rows.append(
            {
                "variant": run.data.tags.get(VARIANT_TAG, run.info.run_name),
                "seed": seed,
                "status": _status(run),
                "train_error": 100 * metrics.get("train_error", math.nan),
                "test_error": 100 * metrics.get("test_error", math.nan),
                **{m: 100 * metrics.get(m, math.nan) for m in FINAL_TESTS},  # the paper's tables' tests
                "iterations": iterations,
                **recipe_of(params, run.data.tags),
                "run_name": run.info.run_name,
                "run_id": run.info.run_id,
                "mlflow": run_link(uri, found.experiment_id, run.info.run_id),
                "artifact_uri": run.info.artifact_uri,
            }
        )
    columns = [
        "variant", "seed", "status", "train_error", "test_error", *FINAL_TESTS, "iterations", *RECIPE_COLUMNS,
        "run_name", "run_id", "mlflow", "artifact_uri",
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=columns).sort_values(["variant", "seed"], ignore_index=True)


RECIPE_COLUMNS = ["lr", "weight_decay", "batch_size", "milestones", "warmup_lr", "data_dir"]


def recipe_of(params: dict[str, str], tags: dict[str, str]) -> dict[str, str]:
    """How a trial trained, as its run recorded it: the recipe's params and the data folder it read (its
    runtime tag), so that every number in a view can be traced to its recipe."""
    try:
        runtime = json.loads(tags.get(RUNTIME_TAG) or "{}")
    except ValueError:
        runtime = {}
    recipe = {name: params.get(f"recipe.{name}", "") for name in RECIPE_COLUMNS[:-1]}
    data_dir = runtime.get("data_dir") if isinstance(runtime, dict) else None
    return {**recipe, "data_dir": str(data_dir) if data_dir else f"({params.get('dataset', '?')}: none)"}


def run_link(uri: str, experiment_id: str, run_id: str) -> str:
    """The run's page in MLflow's UI where the store is a server ("" for a file store: `mlflow ui` on it)."""
    if uri.startswith(("http://", "https://")):
        return f"{uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"
    return ""


def trial_counts(runs: pd.DataFrame) -> str:
    """The trials by status in words, e.g. "8 trials (1 diverged, 7 finished)"; the app and report say it."""
    counts = ", ".join(f"{n} {status}" for status, n in runs["status"].value_counts().sort_index().items())
    return f"{len(runs)} trials ({counts or 'none yet'})"


def error_curves(uri: str, runs: pd.DataFrame, metrics: tuple[str, ...] = CURVE_METRICS) -> pd.DataFrame:
    """Long table of every run's curves: variant, seed, run_id, metric, iteration, error (%)."""
    client = client_for(uri)
    frames = []
    for run in runs.itertuples():
        for metric in metrics:
            history = client.get_metric_history(run.run_id, metric)
            if history:
                frames.append(
                    pd.DataFrame(
                        {
                            "variant": run.variant,
                            "seed": run.seed,
                            "run_id": run.run_id,
                            "metric": metric,
                            "iteration": [m.step for m in history],
                            "error": [100 * m.value for m in history],
                        }
                    )
                )
    columns = ["variant", "seed", "run_id", "metric", "iteration", "error"]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True).sort_values(["variant", "seed", "metric", "iteration"])


# the other curves a run logs, with what their values are (errors in %)
MORE_CURVES = {
    "validation_error": "validation error (%)",
    "train_loss": "training loss",
    "test_loss": "test loss",
    "lr": "learning rate",
    "images_per_second": "training images/s",
}


def metric_curves(uri: str, runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One logged metric of every run as a long table: variant, seed, run_id, iteration, value (an error in
    %); empty when no run logged it (a run without a validation split, say)."""
    client = client_for(uri)
    scale = 100.0 if metric.endswith("_error") else 1.0
    rows = [
        {"variant": run.variant, "seed": run.seed, "run_id": run.run_id, "iteration": m.step, "value": scale * m.value}
        for run in runs.itertuples()
        for m in client.get_metric_history(run.run_id, metric)
    ]
    return pd.DataFrame(rows, columns=["variant", "seed", "run_id", "iteration", "value"])


def seed_bands(curves: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and n over seeds of each (variant, metric, iteration): the band the curve view draws."""
    if curves.empty:
        return pd.DataFrame(columns=["variant", "metric", "iteration", "mean", "std", "n"])
    grouped = curves.groupby(["variant", "metric", "iteration"])["error"]
    bands = grouped.agg(["mean", "std", "count"]).reset_index().rename(columns={"count": "n"})
    bands["std"] = bands["std"].fillna(0.0)
    return bands


def results_table(runs: pd.DataFrame, definition: StudyDefinition) -> pd.DataFrame:
    """The paper-shaped table: per configuration final errors as mean ± std (n), the paper's number and
    the difference, in the study's variant order (the same numbers as the study's summary.csv)."""
    outcomes = [
        TrialOutcome(
            label=r.variant,
            seed=r.seed,
            iterations=r.iterations,
            train_error=r.train_error / 100,
            test_error=r.test_error / 100,
            status=r.status,
            **{m: getattr(r, m) / 100 for m in FINAL_TESTS},
        )
        for r in runs.itertuples()
    ]
    order = definition.variants or sorted(runs["variant"].unique())
    if definition.profile not in TESTING_PROFILES:  # a smoke run is not set beside the paper, as in its summary
        return summarize(outcomes, {}, order, {})
    return summarize(outcomes, definition.paper, order, definition.paper_more)


def layer_responses(uri: str, runs: pd.DataFrame) -> pd.DataFrame:
    """Fig. 7's data from each run's `layer_responses.csv` artifact: variant, seed, layer, std.
    Empty when the study did not compute layer responses."""
    from mlflow.artifacts import load_text

    client = client_for(uri)
    frames = []
    for run in runs.itertuples():
        if not any(a.path == RESPONSES_ARTIFACT for a in client.list_artifacts(run.run_id)):
            continue
        table = pd.read_csv(io.StringIO(load_text(f"{run.artifact_uri}/{RESPONSES_ARTIFACT}")))
        frames.append(table.assign(variant=run.variant, seed=run.seed)[["variant", "seed", "layer", "std"]])
    columns = ["variant", "seed", "layer", "std"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def registered_models(uri: str) -> pd.DataFrame:
    """Every registered net with its versions, aliases, errors (%) and the command that pulls it."""
    client = client_for(uri)
    rows = [
        {
            "name": v.name,
            "version": v.version,
            "aliases": ", ".join(v.aliases),
            "test_error": 100 * v.test_error,
            "train_error": 100 * v.train_error,
            "study": v.study,
            "run": v.run,
            "pull": pull_command(v.name, v.version, uri),
        }
        for v in registered_versions(client)
    ]
    columns = ["name", "version", "aliases", "test_error", "train_error", "study", "run", "pull"]
    return pd.DataFrame(rows, columns=columns).sort_values(["name", "version"], ignore_index=True)


def search_trials(uri: str, experiment: str) -> pd.DataFrame:
    """A search study's trials: each sampled value (`lr`, `weight_decay`, ...), status, iterations reached,
    final errors (%), best first among the trials that finished. Empty for a grid study."""
    client = client_for(uri)
    found = experiment_of(client, uri, experiment)
    rows = []
    for run in client.search_runs([found.experiment_id], max_results=50_000):
        params = run.data.params
        if TRIAL_TAG not in run.data.tags or not any(k.startswith("sampled.") for k in params):
            continue
        try:
            sampled = {k.removeprefix("sampled."): number(params, k) for k in params if k.startswith("sampled.")}
            planned = whole_number(params, "recipe.iterations")
        except ValueError as problem:
            logger.warning("skipping run %s of %s: its param %s", run.info.run_name, experiment, problem)
            continue
        history = client.get_metric_history(run.info.run_id, "test_error")
        rows.append(
            {
                **sampled,
                "status": _status(run),
                "iterations": max((m.step for m in history), default=0),
                "planned": planned,
                "validation_error": 100 * run.data.metrics.get("validation_error", math.nan),
                "test_error": 100 * run.data.metrics.get("test_error", math.nan),
                "train_error": 100 * run.data.metrics.get("train_error", math.nan),
                "run_name": run.info.run_name,
            }
        )
    if not rows:
        return pd.DataFrame()
    table = pd.DataFrame(rows)
    table["complete"] = table["iterations"] >= table["planned"]  # ASHA stops the rest early
    ranked = "validation_error" if table["validation_error"].notna().any() else "test_error"  # what it selected on
    return table.sort_values(["complete", ranked], ascending=[False, True], ignore_index=True)
