"""Study results in MLflow, written by the driver as Ray Tune reports them.

Layout: one experiment per study (and profile), one parent run per launch of the study, one child
run per trial named for a human (`cifar_resnet56-seed1`), with every config value as a param, the
Ray trial id as a tag, and metrics by training iteration. Only the driver writes, so the store sees
one writer however many trials run, and a restored driver finds each trial's run again by its trial
id and skips steps already logged: one run per trial, each step once.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from ray.tune import Callback

METRICS = ("train_error", "test_error", "train_loss", "test_loss", "lr", "images_per_second")
TRIAL_TAG = "ray.trial_id"
LAUNCH_TAG = "reslab.launch"
RESPONSES_ARTIFACT = "layer_responses.csv"


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

    def __getstate__(self) -> dict[str, Any]:
        """Tune pickles its callbacks with the experiment; the client and run ids are rebuilt on restore."""
        return {k: v for k, v in self.__dict__.items() if k not in ("_client", "_runs", "_last_step", "_parent")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._client, self._parent, self._runs, self._last_step = None, "", {}, {}

    @property
    def client(self) -> Any:
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(self.uri)
        return self._client

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

    def _run_for(self, trial: Any) -> str:
        """The trial's run: the one already tagged with its trial id (after a restore), else a new child run."""
        if trial.trial_id in self._runs:
            return self._runs[trial.trial_id]
        existing = self.client.search_runs([self._experiment_id], f"tags.`{TRIAL_TAG}` = '{trial.trial_id}'")
        if existing:
            run_id = existing[0].info.run_id
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

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._run_for(trial)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
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
        run_id = self._run_for(trial)
        result = trial.last_result or {}
        if result.get("diverged"):
            self.client.set_tag(run_id, "diverged", result.get("diverged_reason", "true"))
        elif trial.checkpoint is not None:
            self._log_model(run_id, trial.checkpoint)
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
        self.client.set_terminated(self._run_for(trial), "FAILED")

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        if self._parent:
            self.client.set_terminated(self._parent, "FINISHED")
