"""A study's runs, written into MLflow: the one writer that the Tune callback (live) and the sync (after the
store was away) both call, with typed trial records instead of Ray Tune's trial objects.

Layout (the names are in `layout`): one experiment per study and profile, one launch (parent) run per
launch, one child run per trial named for a human (`cifar_resnet56-seed1`) with every config value as a
param, the Ray trial id as a tag, and metrics by training iteration. A restored driver finds each trial's
run again by its trial id and skips steps already logged: one run per trial, each step once.

Every write is idempotent, so a request whose answer was lost (the server acted, the client retried or gave
up) can be sent again: a trial's run is looked up by its trial id before one is made, and runs a lost answer
left twice are merged into one (the extras deleted); a metric carries the time of its report, not of the
write, so the same report logged twice is one row (MLflow's store drops exact duplicates); a launch run
missing from an experiment is made again.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..training.config import RUNTIME_FIELDS
from .catalog import latest_launch
from .layout import (
    CHECKPOINT_TAG,
    DIVERGED_TAG,
    EXPERIMENT_KIND_TAG,
    EXPERIMENT_TAGS,
    FAILED_TAG,
    LAUNCH_TAG,
    METRICS,
    MODEL_ERROR_TAG,
    PARENT_TAG,
    REASON_TAG,
    REGISTERED_NAME_TAG,
    RESPONSES_ARTIFACT,
    RUN_STATUS,
    RUNTIME_TAG,
    STATUS_TAG,
    STUDY_ARTIFACT,
    TRIAL_TAG,
    VARIANT_TAG,
    VERDICT_TAG,
    VERDICTS_ARTIFACT,
    filter_literal,
    trial_status,
)

log = logging.getLogger(__name__)

PARAMS_PER_BATCH = 100  # MLflow takes at most 100 params per log_batch


@dataclass(frozen=True)
class TrialRecord:
    """What tracking knows of one trial: its Ray trial id, the variant label and seed that name its run, the
    training config (a dict, logged as params) and the recipe values a search sampled for it."""

    trial_id: str
    label: str
    seed: int
    config: Mapping[str, Any]
    sampled: Mapping[str, float] = field(default_factory=dict)
    early_stopping: bool = False  # a scheduler (a search's ASHA) may end it before its planned iterations

    @property
    def run_name(self) -> str:
        return f"{self.label}-seed{self.seed}"

    @property
    def planned(self) -> int:
        """The training iterations its recipe plans."""
        return int(self.config["recipe"]["iterations"])

    def status(self, last: Mapping[str, Any], error: str | None = None) -> tuple[str, str]:
        """How the trial ended, from its last report (`layout.trial_status`)."""
        return trial_status(last, self.planned, error=error, early_stopping=self.early_stopping)


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config values as MLflow params: {"recipe": {"lr": 0.1}} -> {"recipe.lr": "0.1"}."""
    flat = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = str(value)
    return flat


class MLflowWriter:
    """Writes one study's experiment. Every method is one or a few MLflow calls that raise when the store
    does not answer; what to do then (skip and sync later) is the caller's choice."""

    def __init__(
        self,
        uri: str,
        experiment: str,
        launch_tags: Mapping[str, str],
        definition: Mapping[str, Any],
        artifact_location: str | None = None,
    ) -> None:
        self.uri, self.experiment, self.launch_tags = uri, experiment, dict(launch_tags)
        self.definition, self.artifact_location = dict(definition), artifact_location
        self._client: Any = None
        self._experiment_id = ""
        self._parent = ""
        self._runs: dict[str, str] = {}  # trial id -> run id
        self._last_step: dict[str, int] = {}  # run id -> highest step logged

    def __getstate__(self) -> dict[str, Any]:
        """Tune pickles its callbacks with the experiment; the client and run ids are found again on restore."""
        kept = ("uri", "experiment", "launch_tags", "definition", "artifact_location")
        return {k: v for k, v in self.__dict__.items() if k in kept}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)

    @property
    def client(self) -> Any:
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(self.uri)
        return self._client

    @property
    def experiment_id(self) -> str:
        return self._experiment_id

    @property
    def launch_run_id(self) -> str:
        """The launch (parent) run written into: started, or found by `attach` ("" before either)."""
        return self._parent

    def start_launch(self) -> None:
        """Find or create the experiment; start this launch's parent run; close parents a dead driver left open."""
        found = self.client.get_experiment_by_name(self.experiment)
        self._experiment_id = (
            found.experiment_id
            if found
            else self.client.create_experiment(
                self.experiment, artifact_location=self.artifact_location, tags=EXPERIMENT_TAGS
            )
        )
        if found is not None and found.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_TAGS[EXPERIMENT_KIND_TAG]:
            self.client.set_experiment_tag(
                self._experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_TAGS[EXPERIMENT_KIND_TAG]
            )
        self.close_open_launches("KILLED")
        parent = self.client.create_run(
            self._experiment_id,
            tags={**self.launch_tags, LAUNCH_TAG: "true"},
            run_name=f"{self.experiment}-{time.strftime('%Y%m%d-%H%M%S')}",
        )
        self._parent = parent.info.run_id
        self.client.log_text(self._parent, json.dumps(self.definition, indent=2, default=str), STUDY_ARTIFACT)
        from mlflow.entities import Param

        trials = self.definition.get("trials") or []
        launch = {"study": self.definition.get("study"), "profile": self.definition.get("profile"),
                  "trials": len(trials), "variants": len(self.definition.get("variants") or [])}  # fmt: skip
        params = [Param(k, str(v)) for k, v in launch.items() if v is not None]
        self.client.log_batch(self._parent, params=params)

    def close_open_launches(self, status: str = "FINISHED") -> int:
        """Close the experiment's launch runs still open: those of drivers that died (KILLED, as a new launch
        finds them), or whose closing write a flaky store lost (FINISHED, as a sync that holds the driver lock
        knows). Returns how many."""
        running = self.client.search_runs(
            [self._experiment_id], f"tags.{LAUNCH_TAG} = 'true' and attributes.status = 'RUNNING'"
        )
        for run in running:
            self.client.set_terminated(run.info.run_id, status)
        return len(running)

    def attach(self) -> bool:
        """Find the experiment and its latest launch run, to write into them without starting a launch (a
        store that lost the experiment, or only its launch run, gets it back). Returns whether it started
        one, which its caller ends (`end_launch`) when done."""
        found = self.client.get_experiment_by_name(self.experiment)
        if found is None:
            self.start_launch()
            return True
        self._experiment_id = found.experiment_id
        launch = latest_launch(self.client, self._experiment_id)
        if launch is None:  # the launch's create was lost: trials without a parent, verdicts with nowhere to go
            self.start_launch()
            return True
        self._parent = launch.info.run_id
        return False

    def record_verdicts(self, table: Any) -> None:
        """Put the study's verdicts on its latest launch: one VERDICT_TAG tag per claim (what the scorecard
        reads) and the whole table, with effects and intervals, as VERDICTS_ARTIFACT."""
        started = self.attach()
        tags = {f"{VERDICT_TAG}{row.claim}": row.verdict for row in table.itertuples()}
        for key, value in tags.items():
            self.client.set_tag(self._parent, key, value)
        self.client.log_text(self._parent, table.to_csv(index=False), VERDICTS_ARTIFACT)
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        counts = {
            "claims": len(table),
            **{f"claims_{v.replace(' ', '_')}": n for v, n in table["verdict"].value_counts().items()},
        }
        metrics = [Metric(key, float(n), now, 0) for key, n in counts.items()]
        self.client.log_batch(self._parent, metrics=metrics)  # the launch's own numbers: comparable across launches
        if started:
            self.end_launch()

    def end_launch(self) -> None:
        if self._parent:
            self.client.set_terminated(self._parent, "FINISHED")

    def find_run(self, trial_id: str, keep: str | None = None) -> Any | None:
        """The run tagged with this trial id, if any. Where a lost answer left several (MLflow's client sent
        `runs/create` again), one is kept — `keep`, else the one with the most steps, then the oldest — and the
        others are deleted: the sync logs any step they held into the kept one from Ray's reports."""
        found = self.client.search_runs([self._experiment_id], f"tags.`{TRIAL_TAG}` = {filter_literal(trial_id)}")
        if len(found) < 2:
            return found[0] if found else None
        steps = {run.info.run_id: len(self.logged_steps(run.info.run_id)) for run in found}
        kept = next((r for r in found if r.info.run_id == keep), None) or min(
            found, key=lambda r: (-steps[r.info.run_id], r.info.start_time)
        )
        for extra in found:
            if extra.info.run_id != kept.info.run_id:
                self.client.delete_run(extra.info.run_id)
                log.info("run %s duplicated trial %s (a lost answer); merged into %s", extra.info.run_id,
                         trial_id, kept.info.run_id)  # fmt: skip
        return kept

    def run_for(self, trial: TrialRecord, reopen: bool = True) -> str:
        """The trial's run: the one already tagged with its trial id (after a restore; RUNNING again if
        `reopen`), else a new child run of this launch with the trial's params."""
        if trial.trial_id in self._runs:
            return self._runs[trial.trial_id]
        existing = self.find_run(trial.trial_id)
        if existing is not None:
            run_id = existing.info.run_id
            if reopen:
                self.client.update_run(run_id, status="RUNNING")
            self._last_step[run_id] = max(self.logged_steps(run_id), default=0)
        else:
            from .registry import registered_name

            tags = {
                **{k: v for k, v in self.launch_tags.items() if k.startswith("mlflow.source.")},
                TRIAL_TAG: trial.trial_id,
                PARENT_TAG: self._parent,
                VARIANT_TAG: trial.label,
                REGISTERED_NAME_TAG: registered_name(trial.config),
                RUNTIME_TAG: json.dumps({k: trial.config[k] for k in RUNTIME_FIELDS if k in trial.config}),
            }
            run_id = self.client.create_run(self._experiment_id, tags=tags, run_name=trial.run_name).info.run_id
            self._log_params(run_id, trial)
            self._last_step[run_id] = 0
        self._runs[trial.trial_id] = run_id
        return run_id

    def logged_steps(self, run_id: str) -> set[int]:
        return {m.step for m in self.client.get_metric_history(run_id, "test_error")}

    def _log_params(self, run_id: str, trial: TrialRecord) -> None:
        from mlflow.entities import Param

        trained = {k: v for k, v in trial.config.items() if k not in RUNTIME_FIELDS}  # how it ran: RUNTIME_TAG
        params = {**flatten(trained), "seed": str(trial.seed)}
        params.update({f"sampled.{k}": str(v) for k, v in trial.sampled.items()})
        items = [Param(k, v) for k, v in params.items()]
        for start in range(0, len(items), PARAMS_PER_BATCH):
            self.client.log_batch(run_id, params=items[start : start + PARAMS_PER_BATCH])

    def log_result(self, trial: TrialRecord, result: Mapping[str, Any], replay: bool = False) -> bool:
        """Log a report's metrics at step = training iteration, in one batch. A step at or before the last
        one logged is a replay after a restore and is skipped, unless `replay` (the sync filling a gap).
        Returns whether it logged."""
        from mlflow.entities import Metric

        run_id, step = self.run_for(trial), int(result.get("iteration", 0))
        if step <= self._last_step.get(run_id, 0) and not replay:
            return False
        # the report's own time: the same report logged again (a lost answer, a sync) is the same row
        when = (
            int(1000 * result["timestamp"])
            if isinstance(result.get("timestamp"), int | float)
            else time.time_ns() // 10**6
        )
        metrics = [Metric(k, float(result[k]), when, step) for k in METRICS if isinstance(result.get(k), int | float)]
        if not metrics:
            return False
        self.client.log_batch(run_id, metrics=metrics)
        self._last_step[run_id] = max(step, self._last_step.get(run_id, 0))
        return True

    def close(
        self, trial: TrialRecord, result: Mapping[str, Any], checkpoint: Any = None, error: str | None = None
    ) -> str:
        """Close an ended trial's run with its status (`TrialRecord.status`) and return it. A trial that could
        not start or errored gets the reason and no net; one that diverged, the diverged tag; any other its
        net logged from `checkpoint` (a Ray Train checkpoint; None: leave the model as it is) and its layer
        responses (Fig. 7)."""
        run_id = self.run_for(trial, reopen=False)
        self.find_run(trial.trial_id, keep=run_id)  # a duplicate a lost answer made meanwhile goes
        status, reason = trial.status(result, error)
        self.client.set_tag(run_id, STATUS_TAG, status)
        self.client.set_tag(run_id, REASON_TAG, reason)
        if result.get("failed"):  # the trial could not start (missing data, invalid config): no net to log
            self.client.set_tag(run_id, FAILED_TAG, result.get("failed_reason", "true"))
        elif status == "diverged":
            self.client.set_tag(run_id, DIVERGED_TAG, reason or "true")
        elif status in ("finished", "stopped"):  # an interrupted trial's net is not its result yet
            if checkpoint is not None:
                self._log_model(run_id, checkpoint)
            if result.get("layer_responses"):  # Fig. 7: the std of each 3x3 layer's response, by layer index
                rows = "".join(f"{layer},{std}\n" for layer, std in enumerate(result["layer_responses"], start=1))
                self.client.log_text(run_id, "layer,std\n" + rows, RESPONSES_ARTIFACT)
        self.client.set_terminated(run_id, RUN_STATUS[status])
        return status

    def _log_model(self, run_id: str, checkpoint: Any) -> None:
        """Log the trial's final net into its run. A failure here is reported on the run and the console
        but does not stop the study: the checkpoint stays in Ray's storage."""
        from ..training.checkpoint import TRIAL_CHECKPOINT
        from .registry import log_trial_model

        try:
            with checkpoint.as_directory() as folder:
                log_trial_model(self.client, run_id, Path(folder) / TRIAL_CHECKPOINT)
            self.client.set_tag(run_id, CHECKPOINT_TAG, checkpoint.path)
        except Exception as error:  # any failure to log a model must not end the study
            message = f"{type(error).__name__}: {error}".splitlines()[0]
            self.client.set_tag(run_id, MODEL_ERROR_TAG, message)
            log.warning("could not log the model of run %s: %s", run_id, message)
