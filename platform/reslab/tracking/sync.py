"""Deliver to MLflow what a study's trials reported while the store did not answer (or into a store that lost
the study altogether).

Ray Tune keeps every report of every trial in the experiment folder (`result.json`, one line per
report, beside `params.json` and the checkpoints). That folder is the durable record: this module
reads it and writes into MLflow whatever is not there yet — a missing run, missing steps, a missing
final status or model — so a server lost mid-study loses nothing. It is idempotent: steps already
logged are skipped, so running it twice, or on a study tracked without trouble, changes nothing.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from ..store.layout import LAUNCH_RECORD, TRIAL_RECORDS, VERDICTS_FILE
from ..store.storage import is_cloud_uri
from .layout import METRICS, MODEL_ERROR_TAG, MODEL_TAG, STATUS_TAG, VERDICT_TAG
from .store import artifact_location
from .trials import error_reason, trial_record
from .writer import MLflowWriter


@contextlib.contextmanager
def local_copy(folder: str | Path) -> Iterator[Path]:
    """The experiment folder on this disk: the folder itself, or for a cloud URI (s3://bucket/studies/NAME)
    a temporary copy of its records (the launch's files, each trial's params and reports). Checkpoints
    stay where they are: a sync fetches the latest one of a trial only when it logs that trial's model."""
    if not is_cloud_uri(folder):
        yield Path(str(folder).removeprefix("file://"))
        return
    import pyarrow.fs

    fs, root = pyarrow.fs.FileSystem.from_uri(str(folder))
    selector = pyarrow.fs.FileSelector(root, recursive=True, allow_not_found=True)
    files = [
        PurePosixPath(info.path).relative_to(root)
        for info in fs.get_file_info(selector)
        if info.type == pyarrow.fs.FileType.File
    ]
    wanted = [p for p in files if len(p.parts) == 1 or (len(p.parts) == 2 and p.name in TRIAL_RECORDS)]
    with tempfile.TemporaryDirectory(prefix="reslab-sync-") as temporary:
        copy = Path(temporary) / PurePosixPath(root).name  # named like the experiment, as sync expects
        for path in wanted:
            target = copy / path
            target.parent.mkdir(parents=True, exist_ok=True)
            with fs.open_input_stream(f"{root}/{path}") as source, target.open("wb") as out:
                out.write(source.read())
        yield copy


@dataclass
class SyncReport:
    """What one sync wrote (new runs, metric steps, runs closed) and what it could not deliver, each named."""

    trials: int = 0
    runs_created: int = 0
    steps_logged: int = 0
    runs_closed: int = 0
    problems: list[str] = field(default_factory=list)  # a report skipped, a trial or a net not delivered
    trial_ids: list[str] = field(default_factory=list)  # the trials found, whose best nets a sync registers

    def __str__(self) -> str:
        text = (
            f"{self.trials} trials checked: {self.runs_created} runs created, {self.steps_logged} missing steps "
            f"logged, {self.runs_closed} runs closed"
        )
        return text + "".join(f"\n  not delivered: {problem}" for problem in self.problems)


def read_reports(trial_folder: Path, planned: int) -> tuple[list[dict[str, Any]], list[str]]:
    """A trial's reports from its `result.json`, one JSON object a line, in order of iteration, and what was
    skipped: a line that is not a report (cut short by a crash, edited), a second report of an iteration (the
    last one is kept: a restored trial reports again what it trained again) and an iteration past the plan."""
    path = trial_folder / "result.json"
    if not path.is_file():
        return [], [f"{trial_folder.name}: no result.json (the trial never reported)"]
    by_iteration: dict[int, dict[str, Any]] = {}
    skipped = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            report = json.loads(line)
            iteration = int(report.get("iteration", 0))
        except (ValueError, TypeError, AttributeError):
            skipped.append(f"{trial_folder.name}/result.json line {number} is not a report")
            continue
        if iteration > planned or iteration < 0:
            skipped.append(
                f"{trial_folder.name}/result.json line {number}: iteration {iteration} is not in 0..{planned}"
            )
            continue
        by_iteration[iteration] = report
    return [by_iteration[i] for i in sorted(by_iteration)], skipped


def _latest_checkpoint(trial_folder: Path, cloud_folder: str | None = None) -> Any:
    """The trial's latest checkpoint: in its folder here, or where the experiment lives in the cloud."""
    from ray.train import Checkpoint

    if cloud_folder is None:
        folders = sorted(trial_folder.glob("checkpoint_*"))
        return Checkpoint.from_directory(str(folders[-1])) if folders else None
    import pyarrow.fs

    fs, root = pyarrow.fs.FileSystem.from_uri(f"{cloud_folder}/{trial_folder.name}")
    found = fs.get_file_info(pyarrow.fs.FileSelector(root, allow_not_found=True))
    directory = pyarrow.fs.FileType.Directory
    folders = sorted(i.path for i in found if i.type == directory and i.base_name.startswith("checkpoint_"))
    return Checkpoint(folders[-1], filesystem=fs) if folders else None


def _restore_verdicts(writer: MLflowWriter, path: Path) -> None:
    """The study's verdicts (written beside the experiment at its end) onto its launch run, when it lacks them."""
    if not path.is_file():
        return
    launch = writer.client.get_run(writer.launch_run_id) if writer.launch_run_id else None
    if launch is None or not any(k.startswith(VERDICT_TAG) for k in launch.data.tags):
        import pandas as pd

        writer.record_verdicts(pd.read_csv(path))


def _record_disagrees(run_status: str, tags: Mapping[str, str], status: str) -> bool:
    """Whether a trial run's record disagrees with how the trial ended (`status`): still open, closed before
    it ended, or closed without its status tag."""
    return run_status == "RUNNING" or tags.get(STATUS_TAG) != status


def sync_experiment(
    folder: str | Path,
    uri: str,
    finished: dict[str, bool] | None = None,
    copy_of: str | None = None,
    driver_gone: bool = False,
) -> SyncReport:
    """Bring the MLflow experiment named after `folder` (a study's experiment folder) up to date with
    the reports in it; into a store without that experiment, the launch comes back too, with its
    provenance and the study's definition (variant order, the paper's numbers). `finished` maps trial
    ids to whether the trial ended well (True) or failed (False); a trial absent from it is judged from its
    reports (one short of its end with no error in them was interrupted) unless its run says it failed. A
    cloud folder (s3://...) is read through a temporary local copy of the files the sync needs; a caller
    holding that copy already passes it as `folder` and the cloud folder as `copy_of`. `driver_gone` (the caller
    holds the driver lock, or is the driver at its end) closes launch runs left open."""
    if copy_of is not None:
        return _sync(Path(folder), uri, finished, copy_of.rstrip("/"), driver_gone)
    if is_cloud_uri(folder):
        with local_copy(folder) as copy:
            return _sync(copy, uri, finished, str(folder).rstrip("/"), driver_gone)
    return _sync(Path(str(folder).removeprefix("file://")), uri, finished, None, driver_gone)


def _sync(
    folder: Path, uri: str, finished: dict[str, bool] | None, cloud_folder: str | None, driver_gone: bool
) -> SyncReport:
    record_path = folder / LAUNCH_RECORD  # when it is lost, the launch is rebuilt without its provenance
    record = json.loads(record_path.read_text()) if record_path.is_file() else {}
    location = artifact_location(uri)  # beside a local store, not in ./mlruns of wherever the sync runs
    writer = MLflowWriter(uri, folder.name, record.get("tags", {}), record.get("definition", {}), location)
    started = writer.attach()
    _restore_verdicts(writer, folder / VERDICTS_FILE)
    report = SyncReport()
    for params_path in sorted(folder.glob("*/params.json")):
        try:
            params = json.loads(params_path.read_text())
            planned = int(params["trial"]["config"]["recipe"]["iterations"])
        except (ValueError, KeyError, TypeError) as error:
            report.problems.append(f"{params_path.parent.name}/params.json is damaged ({type(error).__name__})")
            continue
        reports, skipped = read_reports(params_path.parent, planned)
        report.problems += skipped
        if not reports or "trial_id" not in reports[-1]:
            continue
        report.trials += 1
        report.trial_ids.append(reports[-1]["trial_id"])
        trial = trial_record(reports[-1]["trial_id"], params)
        created = writer.find_run(trial.trial_id) is None
        run_id = writer.run_for(trial, reopen=False)
        report.runs_created += created
        logged = writer.logged_steps(run_id)
        for result in reports:
            if int(result.get("iteration", 0)) not in logged and any(k in result for k in METRICS):
                writer.log_result(trial, result, replay=True)  # even if a later step is there already
                report.steps_logged += 1
        last = reports[-1]
        error = error_reason(None) if (finished or {}).get(trial.trial_id) is False else None
        status, _ = trial.status(last, error)
        run = writer.client.get_run(run_id)
        tags = run.data.tags
        if status == "interrupted" and trial.trial_id not in (finished or {}) and tags.get(STATUS_TAG) == "failed":
            continue  # Tune said it errored when it ended; its reports alone cannot tell an error from Ctrl-C
        model_missing = status in ("finished", "stopped") and MODEL_TAG not in tags  # or its logging failed
        checkpoint = _latest_checkpoint(params_path.parent, cloud_folder) if model_missing else None
        if model_missing and checkpoint is None:
            report.problems.append(f"{trial.run_name}: its net is not logged and it has no checkpoint to log it from")
        if _record_disagrees(run.info.status, tags, status) or checkpoint is not None:
            writer.close(trial, last, checkpoint, error)
            report.runs_closed += 1
        if model_missing and checkpoint is not None:
            now = writer.client.get_run(run_id).data.tags
            if MODEL_TAG not in now:
                reason = now.get(MODEL_ERROR_TAG, "no reason recorded")
                report.problems.append(f"{trial.run_name}: its net could not be logged ({reason})")
            elif MODEL_ERROR_TAG in now:  # an earlier try failed; this one logged it
                writer.client.delete_tag(run_id, MODEL_ERROR_TAG)
    if started:  # the launch this sync brought back into a store that had lost the study: it is complete
        writer.end_launch()
    if driver_gone:
        writer.close_open_launches()
    return report
