"""Deliver to MLflow what a study's trials reported while the store did not answer.

Ray Tune keeps every report of every trial in the experiment folder (`result.json`, one line per
report, beside `params.json` and the checkpoints). That folder is the durable record: this module
reads it and writes into MLflow whatever is not there yet — a missing run, missing steps, a missing
final status or model — so a server lost mid-study loses nothing. It is idempotent: steps already
logged are skipped, so running it twice, or on a study tracked without trouble, changes nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from .callback import METRICS, MLflowTracking
from .registry import MODEL_TAG

LAUNCH_RECORD = "launch.json"  # the launch's provenance tags and study definition, beside grid.json


@dataclass
class SyncReport:
    """What one sync wrote: new runs, metric steps, runs closed."""

    trials: int = 0
    runs_created: int = 0
    steps_logged: int = 0
    runs_closed: int = 0

    def __str__(self) -> str:
        return (
            f"{self.trials} trials checked: {self.runs_created} runs created, {self.steps_logged} missing steps "
            f"logged, {self.runs_closed} runs closed"
        )


def _reports(trial_folder: Path) -> list[dict[str, Any]]:
    path = trial_folder / "result.json"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _latest_checkpoint(trial_folder: Path) -> Any:
    from ray.train import Checkpoint

    folders = sorted(trial_folder.glob("checkpoint_*"))
    return Checkpoint.from_directory(str(folders[-1])) if folders else None


def sync_experiment(folder: str | Path, uri: str, finished: dict[str, bool] | None = None) -> SyncReport:
    """Bring the MLflow experiment named after `folder` (a study's experiment folder) up to date with
    the reports in it; into a store without that experiment, the launch comes back too, with its
    provenance and the study's definition (variant order, the paper's numbers). `finished` maps trial
    ids to whether the trial ended well (True) or failed (False); trials absent from it are closed only
    when their last report reached the planned iteration."""
    folder = Path(folder)
    record_path = folder / LAUNCH_RECORD  # absent in folders of studies run before it was written
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    tracking = MLflowTracking(uri, folder.name, record.get("tags", {}), record.get("definition", {}))
    tracking.attach()
    client, report = tracking.client, SyncReport()
    for params_path in sorted(folder.glob("*/params.json")):
        reports = _reports(params_path.parent)
        if not reports:
            continue
        report.trials += 1
        trial = SimpleNamespace(trial_id=reports[-1]["trial_id"], config=json.loads(params_path.read_text()))
        created = not client.search_runs([tracking._experiment_id], f"tags.`ray.trial_id` = '{trial.trial_id}'")
        run_id = tracking._run_for(trial, reopen=False)
        report.runs_created += created
        logged = {m.step for m in client.get_metric_history(run_id, "test_error")}
        for result in reports:
            if int(result.get("iteration", 0)) not in logged and any(k in result for k in METRICS):
                tracking._last_step[run_id] = 0  # log this step even if a later one is there already
                tracking.log_result(trial, result)
                report.steps_logged += 1
        planned = trial.config["trial"]["config"]["recipe"]["iterations"]
        last = reports[-1]
        ended = (finished or {}).get(trial.trial_id)
        if last.get("failed"):
            ended = False  # it could not start: its run is FAILED, never a model
        if ended is None and (last.get("diverged") or int(last.get("iteration", 0)) >= planned):
            ended = True
        run = client.get_run(run_id)
        tags = run.data.tags
        model_missing = not last.get("diverged") and MODEL_TAG not in tags and "reslab.model_error" not in tags
        if ended is True and (run.info.status != "FINISHED" or model_missing):
            checkpoint = None if last.get("diverged") else _latest_checkpoint(params_path.parent)
            tracking.finish(trial, last, checkpoint)
            report.runs_closed += 1
        elif ended is False and run.info.status != "FAILED":
            client.set_terminated(run_id, "FAILED")
            report.runs_closed += 1
        elif ended is None and run.info.status == "RUNNING":
            client.set_terminated(run_id, "KILLED")  # stopped early (e.g. by ASHA) or the study was interrupted
    return report
