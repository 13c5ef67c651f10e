"""Study results in MLflow, written by the driver as Ray Tune reports them.

Layout: one experiment per study (and profile), one parent run per launch of the study, one child
run per trial named for a human (`cifar_resnet56-seed1`), with every config value as a param, the
Ray trial id as a tag, and metrics by training iteration. Only the driver writes, so the store sees
one writer however many trials run, and a restored driver finds each trial's run again by its trial
id and skips steps already logged: one run per trial, each step once.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ray.tune import Callback

METRICS = ("train_error", "test_error", "train_loss", "test_loss", "lr", "images_per_second")
TRIAL_TAG = "ray.trial_id"
LAUNCH_TAG = "reslab.launch"
RESPONSES_ARTIFACT = "layer_responses.csv"
RETRY_AFTER_S = 10.0  # while the store does not answer, how long writes are skipped before trying again


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config values as MLflow params: {"recipe": {"lr": 0.1}} -> {"recipe.lr": "0.1"}."""
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = str(value)
    return flat


class MLflowTracking(Callback):
    """A Tune callback that mirrors every trial into an MLflow child run of this launch's parent run."""

    def __init__(
        self,
        uri: str,
        experiment: str,
        launch_tags: dict[str, str],
        definition: dict[str, Any],
        artifact_location: str | None = None,
    ) -> None:
        self.uri, self.experiment, self.launch_tags = uri, experiment, launch_tags
        self.definition, self.artifact_location = definition, artifact_location
        self._client: Any = None
        self._experiment_id = ""
        self._parent = ""
        self._runs: dict[str, str] = {}  # trial id -> run id
        self._last_step: dict[str, int] = {}  # run id -> highest step logged
        self.down_since: float | None = None  # when the store stopped answering (None: it answers)
        self._last_try = 0.0
        self.skipped_writes = 0

    def __getstate__(self) -> dict[str, Any]:
        """Tune pickles its callbacks with the experiment; the client and run ids are rebuilt on restore."""
        return {k: v for k, v in self.__dict__.items() if k not in ("_client", "_runs", "_last_step", "_parent")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._client, self._parent, self._runs, self._last_step = None, "", {}, {}
        self.down_since, self._last_try, self.skipped_writes = None, 0.0, 0

    @property
    def client(self) -> Any:
        if self._client is None:
            # a lost server must not stall the driver for minutes per call (MLflow's default: 7 retries with
            # exponential backoff, 120 s timeout); a failed write is skipped and synced later instead
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
            os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
            from mlflow import MlflowClient

            self._client = MlflowClient(self.uri)
        return self._client

    def attach(self) -> None:
        """Find the experiment and its latest launch run, to write into them without starting a launch."""
        found = self.client.get_experiment_by_name(self.experiment)
        if found is None:
            self.setup()
            return
        self._experiment_id = found.experiment_id
        launches = self.client.search_runs(
            [self._experiment_id], f"tags.{LAUNCH_TAG} = 'true'", order_by=["attributes.start_time DESC"], max_results=1
        )
        self._parent = launches[0].info.run_id if launches else ""

    def setup(self, **info: Any) -> None:
        """Find or create the experiment; start this launch's parent run; close parents a dead driver left open."""
        found = self.client.get_experiment_by_name(self.experiment)
        self._experiment_id = (
            found.experiment_id
            if found
            else self.client.create_experiment(self.experiment, artifact_location=self.artifact_location)
        )
        for run in self.client.search_runs(
            [self._experiment_id], f"tags.{LAUNCH_TAG} = 'true' and attributes.status = 'RUNNING'"
        ):
            self.client.set_terminated(run.info.run_id, "KILLED")
        parent = self.client.create_run(
            self._experiment_id,
            tags={**self.launch_tags, LAUNCH_TAG: "true"},
            run_name=f"{self.experiment}-{time.strftime('%Y%m%d-%H%M%S')}",
        )
        self._parent = parent.info.run_id
        self.client.log_text(self._parent, json.dumps(self.definition, indent=2, default=str), "study.json")

    def _run_for(self, trial: Any, reopen: bool = True) -> str:
        """The trial's run: the one already tagged with its trial id (after a restore; RUNNING again
        if `reopen`), else a new child run."""
        if trial.trial_id in self._runs:
            return self._runs[trial.trial_id]
        existing = self.client.search_runs([self._experiment_id], f"tags.`{TRIAL_TAG}` = '{trial.trial_id}'")
        if existing:
            run_id = existing[0].info.run_id
            if reopen:
                self.client.update_run(run_id, status="RUNNING")
            history = self.client.get_metric_history(run_id, "test_error")
            self._last_step[run_id] = max((m.step for m in history), default=0)
        else:
            from ..study.spec import trial_label
            from .registry import registered_name

            label, seed = trial_label(trial.config), trial.config["trial"]["seed"]
            tags = {
                TRIAL_TAG: trial.trial_id,
                "mlflow.parentRunId": self._parent,
                "reslab.variant": label,
                "reslab.registered_name": registered_name(trial.config["trial"]["config"]),
            }
            run_id = self.client.create_run(self._experiment_id, tags=tags, run_name=f"{label}-seed{seed}").info.run_id
            self._log_params(run_id, trial.config)
            self._last_step[run_id] = 0
        self._runs[trial.trial_id] = run_id
        return run_id

    def _log_params(self, run_id: str, config: dict[str, Any]) -> None:
        from mlflow.entities import Param

        params = {**flatten(config["trial"]["config"]), "seed": str(config["trial"]["seed"])}
        params.update({f"sampled.{k}": str(v) for k, v in (config.get("sampled") or {}).items()})
        items = [Param(k, v) for k, v in params.items()]
        for start in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(run_id, params=items[start : start + 100])

    def _guarded(self, write: Callable[[], None]) -> None:
        """Run one write to the store. When the store stops answering, training goes on: the write is
        skipped and counted (every result stays in Ray's storage, and `sync_experiment` delivers what
        is missing when the store is back), and the store is tried again after `RETRY_AFTER_S`."""
        if self.down_since is not None and time.monotonic() - self._last_try < RETRY_AFTER_S:
            self.skipped_writes += 1
            return
        try:
            write()
        except Exception as error:  # any failure of the store must not stop the study
            self._last_try = time.monotonic()
            self.skipped_writes += 1
            if self.down_since is None:
                self.down_since = time.time()
                reason = f"{type(error).__name__}: {error}".splitlines()[0][:300]
                print(
                    f"MLflow store {self.uri} stopped answering ({reason}); training goes on and results are "
                    "kept in Ray's storage until it is back",
                    file=sys.stderr,
                )
            return
        if self.down_since is not None:
            print(f"MLflow store {self.uri} answers again", file=sys.stderr)
            self.down_since = None

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._guarded(lambda: self._run_for(trial))

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self._guarded(lambda: self.log_result(trial, result))

    def log_result(self, trial: Any, result: dict) -> None:
        """Log the report's metrics at step = training iteration, once: replays after a restore are skipped."""
        from mlflow.entities import Metric

        run_id, step = self._run_for(trial), int(result.get("iteration", 0))
        if step <= self._last_step.get(run_id, 0):
            return
        now = int(time.time() * 1000)
        metrics = [Metric(k, float(result[k]), now, step) for k in METRICS if isinstance(result.get(k), int | float)]
        self.client.log_batch(run_id, metrics=metrics)
        self._last_step[run_id] = step

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._guarded(lambda: self.finish(trial, trial.last_result or {}, trial.checkpoint))

    def finish(self, trial: Any, result: dict, checkpoint: Any) -> None:
        """Close an ended trial's run: FAILED with the reason when it could not start; else diverged tag or its
        net logged, layer responses, FINISHED."""
        run_id = self._run_for(trial)
        if result.get("failed"):  # the trial could not start (missing data, invalid config): no net to log
            self.client.set_tag(run_id, "reslab.failed", result.get("failed_reason", "true"))
            self.client.set_terminated(run_id, "FAILED")
            return
        if result.get("diverged"):
            self.client.set_tag(run_id, "diverged", result.get("diverged_reason", "true"))
        elif checkpoint is not None:
            self._log_model(run_id, checkpoint)
        if result.get("layer_responses"):  # Fig. 7: the std of each 3x3 layer's response, by layer index
            rows = "".join(f"{layer},{std}\n" for layer, std in enumerate(result["layer_responses"], start=1))
            self.client.log_text(run_id, "layer,std\n" + rows, RESPONSES_ARTIFACT)
        self.client.set_terminated(run_id, "FINISHED")

    def _log_model(self, run_id: str, checkpoint: Any) -> None:
        """Log the trial's final net into its run. A failure here is reported on the run and the console
        but does not stop the study: the checkpoint stays in Ray's storage."""
        from ..study.data_parallel import TRIAL_CHECKPOINT
        from .registry import log_trial_model

        try:
            with checkpoint.as_directory() as folder:
                log_trial_model(self.client, run_id, Path(folder) / TRIAL_CHECKPOINT)
            self.client.set_tag(run_id, "reslab.checkpoint", checkpoint.path)
        except Exception as error:  # any failure to log a model must not end the study
            message = f"{type(error).__name__}: {error}".splitlines()[0]
            self.client.set_tag(run_id, "reslab.model_error", message)
            print(f"could not log the model of run {run_id}: {message}", file=sys.stderr)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._guarded(lambda: self.client.set_terminated(self._run_for(trial), "FAILED"))

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if self._parent:
            self._guarded(lambda: self.client.set_terminated(self._parent, "FINISHED"))
        if self.skipped_writes:
            print(
                f"MLflow store {self.uri}: {self.skipped_writes} writes were skipped while it did not answer; "
                "the study syncs them from Ray's storage now (or run `reslab tracking sync` later)",
                file=sys.stderr,
            )
