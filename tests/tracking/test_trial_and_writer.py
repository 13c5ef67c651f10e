"""The study <-> tracking contract, without a cluster: the one trial loop (`reslab.launch.trial.run_trial`)
reporting to a session of our own, the MLflow writer on a real local store, and the launch refusals that
come before Ray starts."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from ray.train import Checkpoint

from reslab.launch.trial import Session, earlier_checkpoints, run_trial
from reslab.tracking.layout import (
    FAILED_TAG,
    LAUNCH_TAG,
    REASON_TAG,
    RESPONSES_ARTIFACT,
    RUNTIME_TAG,
    STATUS_TAG,
    TRIAL_TAG,
    VARIANT_TAG,
    run_status,
    trial_status,
)
from reslab.tracking.trials import TrialParams
from reslab.tracking.writer import MLflowWriter, TrialRecord
from reslab.training import Recipe, TrainConfig

RECIPE = Recipe(batch_size=16, iterations=4, milestones=(2, 3))


def params(layer_responses: bool = True, **options: Any) -> dict[str, Any]:
    """Tune's params of a small trial, as the tuner makes them."""
    config = TrainConfig("cifar_resnet20", dataset="synthetic", recipe=RECIPE, eval_every=2)
    trial = TrialParams("cifar_resnet20", 0, config.to_dict(), "unused", layer_responses=layer_responses, **options)
    return {"trial": trial.point()}


class Recorder:
    """A session that keeps the reports and the last checkpoint folder, as Tune would."""

    def __init__(self, resume_from: Path | None = None) -> None:
        self.reports: list[dict[str, Any]] = []
        self.saved: Path | None = None
        self.resume_from = resume_from

    def session(self, tmp_path: Path) -> Session:
        def report(metrics: dict[str, Any], folder: str | None) -> None:
            self.reports.append(metrics)
            if folder is not None:
                self.saved = tmp_path / f"checkpoint_{len(self.reports)}"
                self.saved.mkdir()
                for file in Path(folder).iterdir():
                    (self.saved / file.name).write_bytes(file.read_bytes())

        def checkpoints() -> list[Checkpoint]:  # as Ray Tune's session gives them, newest first
            if self.resume_from is None:
                return []
            latest = Checkpoint(str(self.resume_from))
            return [latest, *earlier_checkpoints(latest)]

        return Session(report=report, checkpoints=checkpoints)


def test_the_trial_loop_reports_each_evaluation_with_a_checkpoint_and_fig7_at_the_end(tmp_path: Path) -> None:
    recorder = Recorder()
    run_trial(params(), recorder.session(tmp_path), {"node_id": "here"}, gpu_ids=[])
    assert [r["iteration"] for r in recorder.reports] == [2, 4]
    assert all(r["node_id"] == "here" and r["resumed_from"] == 0 and not r["diverged"] for r in recorder.reports)
    assert "layer_responses" not in recorder.reports[0]
    assert len(recorder.reports[-1]["layer_responses"]) == 19  # ResNet-20: 19 3x3 conv layers
    assert recorder.saved is not None and (recorder.saved / "checkpoint.pt").is_file()

    # restored from the final checkpoint (the driver died before recording the end): the end is reported again,
    # with Fig. 7's data, and nothing is trained twice
    again = Recorder(resume_from=recorder.saved)
    (tmp_path / "again").mkdir()
    run_trial(params(), again.session(tmp_path / "again"), {}, gpu_ids=[])
    [final] = again.reports
    assert final["iteration"] == 4 and final["resumed_from"] == 4
    assert final["test_error"] == recorder.reports[-1]["test_error"]
    assert final["layer_responses"] == pytest.approx(recorder.reports[-1]["layer_responses"])


def test_a_corrupt_latest_checkpoint_resumes_from_the_one_before_and_says_so(tmp_path: Path) -> None:
    first = Recorder()
    run_trial(params(layer_responses=False), first.session(tmp_path), {}, gpu_ids=[])
    latest, previous = tmp_path / "checkpoint_2", tmp_path / "checkpoint_1"  # what Tune keeps: the last two
    latest.joinpath("checkpoint.pt").write_bytes(b"torn write" * 100)
    again = Recorder(resume_from=latest)
    (tmp_path / "again").mkdir()
    run_trial(params(layer_responses=False), again.session(tmp_path / "again"), {}, gpu_ids=[])
    assert [r["iteration"] for r in again.reports] == [4]  # iterations 3-4 trained again, from iteration 2
    assert again.reports[0]["resumed_from"] == 2
    assert again.reports[0]["checkpoint_skipped"].startswith("checkpoint_2 unreadable (checkpoint ")

    previous.joinpath("checkpoint.pt").write_bytes(b"")  # none readable: the trial starts over, saying so
    third = Recorder(resume_from=latest)
    (tmp_path / "third").mkdir()
    run_trial(params(layer_responses=False), third.session(tmp_path / "third"), {}, gpu_ids=[])
    assert [r["iteration"] for r in third.reports] == [2, 4] and third.reports[0]["resumed_from"] == 0
    assert third.reports[0]["checkpoint_skipped"].startswith("started over: checkpoint_2 unreadable")
    assert "checkpoint_1 unreadable" in third.reports[0]["checkpoint_skipped"]


def test_a_trial_that_cannot_start_reports_once_with_the_reason(tmp_path: Path) -> None:
    recorder = Recorder()
    missing = params(data_source=str(tmp_path / "nowhere"))
    missing["trial"]["config"].update(dataset="cifar10", data_dir=str(tmp_path / "node" / "cifar10"))
    run_trial(missing, recorder.session(tmp_path), {"node_id": "n1"}, gpu_ids=[])
    [report] = recorder.reports
    assert report["failed"] and report["node_id"] == "n1" and report["failed_reason"].startswith("DatasetNotFoundError")

    crafted = tmp_path / "crafted.tar"  # a --data-source archive whose link points out of the data folder
    with tarfile.open(crafted, "w") as tar:
        link = tarfile.TarInfo("cifar-10-batches-py")
        link.type, link.linkname = tarfile.SYMTYPE, str(tmp_path)
        tar.addfile(link)
    recorder = Recorder()
    hostile = params(data_source=str(crafted))
    hostile["trial"]["config"].update(dataset="cifar10", data_dir=str(tmp_path / "node2" / "cifar10"))
    run_trial(hostile, recorder.session(tmp_path), {}, gpu_ids=[])
    [report] = recorder.reports
    assert "archive member 'cifar-10-batches-py' is a link" in report["failed_reason"]
    assert [p.name for p in (tmp_path / "node2").iterdir()] == [".cifar10.lock"]
    if not torch.cuda.is_available():  # a GPU that torch cannot use: failed, or trained on the CPU when allowed
        recorder = Recorder()
        run_trial(params(), recorder.session(tmp_path), {}, gpu_ids=[0])
        assert [r["failed_reason"].split(":")[0] for r in recorder.reports] == ["CudaUnavailable"]
        recorder = Recorder()
        run_trial(params(allow_cpu_fallback=True), recorder.session(tmp_path), {}, gpu_ids=[0])
        assert [r["iteration"] for r in recorder.reports] == [2, 4] and recorder.reports[-1]["device"] == "cpu"


def record(trial_id: str = "t1", label: str = "cifar_resnet20") -> TrialRecord:
    config = TrainConfig("cifar_resnet20", dataset="synthetic", recipe=RECIPE).to_dict()
    return TrialRecord(trial_id=trial_id, label=label, seed=1, config=config, sampled={"lr": 0.05})


def test_the_writer_keeps_one_run_per_trial_and_each_step_once(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    source = {"mlflow.source.name": "studies/x.py", "mlflow.source.type": "LOCAL", "mlflow.source.git.commit": "ab"}
    definition = {"study": "contract", "profile": "smoke", "variants": ["cifar_resnet20"], "trials": [{}, {}]}
    writer = MLflowWriter(uri, "contract-smoke", {"profile": "smoke", **source}, definition)
    writer.start_launch()
    trial = record()
    run_id = writer.run_for(trial)
    for step in (2, 4, 4, 2):  # a replay after a restore repeats steps
        writer.log_result(trial, {"iteration": step, "test_error": 1 / step, "train_error": 0.5})
    client = MlflowClient(uri)
    assert [m.step for m in client.get_metric_history(run_id, "test_error")] == [2, 4]
    run = client.get_run(run_id)
    assert run.info.run_name == "cifar_resnet20-seed1" and run.data.tags[TRIAL_TAG] == "t1"
    assert run.data.tags[VARIANT_TAG] == "cifar_resnet20" and run.data.params["sampled.lr"] == "0.05"
    assert run.data.params["recipe.iterations"] == "4" and run.data.params["seed"] == "1"
    assert "data_dir" not in run.data.params and "precision" not in run.data.params  # how it ran: a tag
    assert json.loads(run.data.tags[RUNTIME_TAG])["precision"] == "auto"
    assert writer.close(trial, {"iteration": 4, "layer_responses": [0.5, 0.25]}) == "finished"
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags[STATUS_TAG] == "finished"
    assert [a.path for a in client.list_artifacts(run_id)] == [RESPONSES_ARTIFACT]

    # a restored driver: a new writer finds the run by trial id; a gap is filled only when asked (the sync)
    restored = MLflowWriter(uri, "contract-smoke", {}, {})
    restored.attach()
    assert restored.run_for(trial, reopen=False) == run_id and restored.logged_steps(run_id) == {2, 4}
    assert not restored.log_result(trial, {"iteration": 3, "test_error": 0.3})
    assert restored.log_result(trial, {"iteration": 3, "test_error": 0.3}, replay=True)
    assert sorted(m.step for m in client.get_metric_history(run_id, "test_error")) == [2, 3, 4]

    failed = record("t2", "lr=1e6")
    assert writer.close(failed, {"failed": True, "failed_reason": "DatasetNotFoundError: no data"}) == "failed"
    run = writer.find_run("t2")
    assert run.info.status == "FAILED" and run.data.tags[FAILED_TAG].startswith("DatasetNotFoundError")
    assert run.data.tags[REASON_TAG] == "DatasetNotFoundError: no data" and not client.list_artifacts(run.info.run_id)
    writer.end_launch()
    [launch] = client.search_runs([writer.experiment_id], f"tags.{LAUNCH_TAG} = 'true'")
    assert launch.info.status == "FINISHED"
    assert json.loads(Path(client.download_artifacts(launch.info.run_id, "study.json", str(tmp_path))).read_text())
    # what MLflow's own UI reads: an experiment of model training, each run's source, the launch's numbers
    assert client.get_experiment(writer.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
    assert {k: client.get_run(run_id).data.tags[k] for k in source} == source
    assert launch.data.params == {"study": "contract", "profile": "smoke", "trials": "2", "variants": "1"}
    writer.record_verdicts(pd.DataFrame({"claim": ["a", "b", "c"], "verdict": ["holds", "indicative", "holds"]}))
    launch = client.get_run(launch.info.run_id)
    assert launch.data.metrics == {"claims": 3.0, "claims_holds": 2.0, "claims_indicative": 1.0}


@pytest.mark.parametrize(
    "last, error, early_stopping, expected",
    [
        ({"iteration": 4}, None, False, ("finished", "")),
        ({"iteration": 4}, None, True, ("finished", "")),
        ({"iteration": 2}, None, True, ("stopped", "stopped early by ASHA at iteration 2 of 4")),
        ({"iteration": 2}, None, False, ("interrupted", "interrupted at iteration 2 of 4")),  # Ctrl-C, a dead driver
        ({"iteration": 3, "diverged": True, "diverged_reason": "loss nan"}, None, False, ("diverged", "loss nan")),
        ({"iteration": 0, "failed": True, "failed_reason": "no data"}, None, True, ("failed", "no data")),
        ({"iteration": 4}, "ValueError: bad", False, ("failed", "ValueError: bad")),  # Tune marked it errored
    ],
)
def test_one_classification_of_how_a_trial_ended(last: dict, error: str | None, early_stopping: bool, expected) -> None:
    assert trial_status(last, 4, error=error, early_stopping=early_stopping) == expected


def test_a_runs_status_reads_the_status_tag() -> None:
    assert run_status("RUNNING", {STATUS_TAG: "finished"}) == "running"  # reopened after a restore
    assert run_status("KILLED", {STATUS_TAG: "stopped"}) == "stopped"
    assert run_status("KILLED", {STATUS_TAG: "interrupted"}) == "interrupted"
    assert run_status("FINISHED", {STATUS_TAG: "diverged"}) == "diverged"
    # closed without it: an incomplete record (the tag is written before the run is closed)
    assert run_status("FINISHED", {"diverged": "loss nan"}) == "failed" and run_status("FINISHED", {}) == "failed"


def write_experiment(folder: Path, trials: dict[str, tuple[dict, list[dict]]]) -> None:
    """A study's experiment folder as Ray Tune writes it: per trial `params.json` and `result.json` (one
    report per line)."""
    for trial_id, (trial_params, reports) in trials.items():
        (folder / trial_id).mkdir(parents=True)
        (folder / trial_id / "params.json").write_text(json.dumps(trial_params))
        lines = [json.dumps({"trial_id": trial_id, **r}) for r in reports]
        (folder / trial_id / "result.json").write_text("\n".join(lines) + "\n")


def test_the_sync_records_each_trials_end_as_the_study_does_and_twice_changes_nothing(tmp_path: Path) -> None:
    from reslab.dashboard.queries import trial_runs
    from reslab.tracking.sync import sync_experiment

    def report(iteration: int, **extra: Any) -> dict[str, Any]:
        return {"iteration": iteration, "test_error": 0.5, "train_error": 0.4, **extra}

    grid = params(layer_responses=False)
    search = {**params(early_stopping=True), "sampled": {"lr": 0.3}}
    folder = tmp_path / "sync-smoke"
    write_experiment(
        folder,
        {
            "done": (grid, [report(2), report(4)]),
            "nan": (grid, [report(2), {"iteration": 3, "diverged": True, "diverged_reason": "loss is nan"}]),
            "asha": (search, [report(2)]),
            "crashed": (grid, [report(2)]),  # Tune marked it errored
            "interrupted": (grid, [report(2)]),  # the driver died: no word from Tune
        },
    )
    verdict = "claim,verdict,effect\nresnet-beats-plain,indicative,1.5\n"
    (folder / "verdicts.csv").write_text(verdict)  # what the study wrote beside its trials at its end
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    first = sync_experiment(folder, uri, finished={"done": True, "crashed": False})
    assert (first.trials, first.runs_created, first.steps_logged, first.runs_closed) == (5, 5, 6, 5)
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    runs = [
        r
        for r in client.search_runs([client.get_experiment_by_name("sync-smoke").experiment_id])
        if TRIAL_TAG in r.data.tags
    ]
    statuses = {r.data.tags[TRIAL_TAG]: run_status(r.info.status, r.data.tags) for r in runs}
    expected = {
        "done": "finished",
        "nan": "diverged",
        "asha": "stopped",
        "crashed": "failed",
        "interrupted": "interrupted",
    }
    assert statuses == expected
    assert sorted(trial_runs(uri, "sync-smoke")["status"]) == sorted(expected.values())  # the dashboard's words
    reasons = {r.data.tags[TRIAL_TAG]: r.data.tags[REASON_TAG] for r in runs}
    assert reasons["interrupted"] == "interrupted at iteration 2 of 4" and reasons["nan"] == "loss is nan"
    interrupted = next(r for r in runs if r.data.tags[TRIAL_TAG] == "interrupted")
    assert interrupted.info.status == "KILLED" and not client.list_artifacts(interrupted.info.run_id)  # no net yet
    from reslab.dashboard import study_verdicts

    assert list(study_verdicts(uri, "sync-smoke")["verdict"]) == ["indicative"]  # the rebuilt launch has them
    again = sync_experiment(folder, uri)
    assert (again.runs_created, again.steps_logged, again.runs_closed) == (0, 0, 0)


def test_a_launch_onto_another_grid_or_a_resume_of_nothing_is_refused_before_ray_starts(tmp_path: Path) -> None:
    import ray

    from reslab.launch.options import RunOptions
    from reslab.launch.run import run_study
    from reslab.study import Study, grid

    study = Study("refusals", "a test study", "cifar10", grid(lr=[0.1]), settings={"model": "cifar_resnet20"})
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with pytest.raises(ValueError, match=r"nothing to resume at .*refusals-smoke: no experiment state there"):
        run_study(study, storage=tmp_path, tracking_uri=store, options=RunOptions(resume=True))
    (tmp_path / "refusals-smoke").mkdir()
    (tmp_path / "refusals-smoke" / "grid.json").write_text(json.dumps({"fingerprint": "another", "trials": 3}))
    with pytest.raises(ValueError, match="holds a different trial grid; pass another --storage"):
        run_study(study, storage=tmp_path, tracking_uri=store)
    assert not ray.is_initialized() and not (tmp_path / "mlflow.db").exists()


def test_the_grid_fingerprint_is_what_is_trained_not_how_it_runs() -> None:
    from reslab.study import Study, grid
    from reslab.study.identity import grid_fingerprint

    def fingerprint(lr: float = 0.1, **runtime: Any) -> str:
        settings = {"model": "cifar_resnet20", **runtime}
        study = Study("fp", "a test study", "cifar10", grid(lr=[lr]), settings=settings)
        return grid_fingerprint(study.trials("smoke", runtime.get("data_dir")), study, "smoke")

    same = fingerprint()
    assert fingerprint(precision="fp32", data_parallel=2, workers=1) == same
    assert fingerprint(lr=0.05) != same  # another grid


def test_a_config_spells_out_the_familys_default_shortcut_and_none_means_plain() -> None:
    assert TrainConfig("cifar_resnet20").shortcut == "A" and TrainConfig("resnet34").shortcut == "B"
    assert TrainConfig("resnet34", shortcut="C").shortcut == "C"
    assert TrainConfig("cifar_plain20").shortcut is None and TrainConfig("plain34").shortcut is None
    assert TrainConfig.from_dict(TrainConfig("resnet50").to_dict()).shortcut == "B"  # a stored config says it
    assert "shortcut: 'A' is not valid for cifar_plain20" in " ".join(
        TrainConfig("cifar_plain20", shortcut="A").problems()
    )


def test_the_summary_gives_verdicts_from_tunes_results_and_names_trials_that_never_started(tmp_path: Path) -> None:
    """`_summarize` on Ray Tune's own Result objects: two seeds per side of the paper's schedule on all of
    CIFAR-10 give a Welch verdict from the last quarter of training; the same trials on the quick profile only
    an indicative result with its reason; a trial an interrupted study never started is named, not a crash."""
    import io

    import pandas as pd
    from ray.tune import Result

    from reslab.launch.options import RunOptions
    from reslab.launch.run import Launch, _summarize
    from reslab.study import Claim, Study, grid

    claim = Claim("deeper-trains-worse", "plain-32 trains worse", "Fig. 6", "train_error_late", "cifar_plain20",
                  "cifar_plain32")  # fmt: skip
    study = Study("verdicts", "t", "cifar10", grid(model=["cifar_plain20", "cifar_plain32"]), seeds=(0, 1),
                  claims=(claim,))  # fmt: skip
    late = {("cifar_plain20", 0): 0.10, ("cifar_plain20", 1): 0.11, ("cifar_plain32", 0): 0.20,
            ("cifar_plain32", 1): 0.21}  # fmt: skip

    def launched(profile: str) -> tuple[Launch, list[Result], int]:
        """The launch of `profile` and the results Tune would hand back for its trials."""
        trials = study.trials(profile, "/data")
        planned = trials[0].config.recipe.iterations
        launch = Launch(study, profile, trials, None, "sqlite:///unused.db", str(tmp_path), RunOptions())

        def result(trial, late_error: float) -> Result:
            steps = [planned // 2, planned * 3 // 4, planned]
            history = pd.DataFrame({"iteration": steps, "train_error": [0.9, late_error, late_error],
                                    "test_error": [0.9, 0.5, 0.5]})  # fmt: skip
            params = {"trial": TrialParams(trial.label, trial.seed, trial.config.to_dict(), str(tmp_path)).point()}
            metrics = {"config": params, "iteration": planned, "train_error": late_error, "test_error": 0.5,
                       "train_images": 50_000}  # fmt: skip
            return Result(metrics=metrics, checkpoint=None, error=None, path=str(tmp_path), metrics_dataframe=history)

        return launch, [result(t, late[(t.label, t.seed)]) for t in trials], planned

    launch, results, planned = launched("paper")
    never = Result(metrics={}, checkpoint=None, error=None, path=str(tmp_path))
    run = _summarize(launch, [*results, never], io.StringIO())
    [verdict] = run.verdicts.to_dict("records")
    assert verdict["verdict"] == "holds" and verdict["effect"] == pytest.approx(10.0)
    assert (verdict["n_lower"], verdict["n_higher"]) == (2, 2) and 0 < verdict["ci_low"] < 10 < verdict["ci_high"]
    assert verdict["evidence"] == "verdict" and verdict["schedule"] == 1.0 and verdict["train_images"] == 50_000
    written = (tmp_path / "verdicts-paper" / "summary.md").read_text()
    assert "| plain-32 trains worse | Fig. 6 | holds | +10.00 |" in written
    assert "The study was interrupted: of 5 trials, 1 never started." in written and run.interrupted
    launch, results, planned = launched("quick")
    [quick] = _summarize(launch, results, io.StringIO()).verdicts.to_dict("records")
    assert quick["verdict"] == "indicative" and quick["leans"] == "holds"
    assert quick["reason"] == "trained 3.12 % of the paper's schedule" and quick["schedule"] == pytest.approx(
        2000 / 64000
    )
    assert (tmp_path / "verdicts-quick" / "verdicts.csv").is_file()

    # Ctrl-C half-way through the last trial: it is interrupted (resumable), not failed, and no verdict uses it
    stopped = Result(metrics={**results[-1].metrics, "iteration": planned // 2}, checkpoint=None, error=None,
                     path=str(tmp_path), metrics_dataframe=results[-1].metrics_dataframe.iloc[:1])  # fmt: skip
    run = _summarize(launch, [*results[:-1], stopped], io.StringIO())
    assert [o.status for o in run.outcomes] == ["finished"] * 3 + ["interrupted"] and run.interrupted
    assert run.table.set_index("variant").loc["cifar_plain32", ["n", "failed"]].tolist() == [1, 0]
    assert run.verdicts.iloc[0]["n_higher"] == 1
    written = (tmp_path / "verdicts-quick" / "summary.md").read_text()
    assert f"of 4 trials, 1 interrupted (interrupted at iteration {planned // 2} of {planned})" in written
    assert "run the same command again to resume it" in written


def test_the_sync_reads_reports_line_by_line_names_what_it_cannot_deliver_and_merges_duplicates(
    tmp_path: Path,
) -> None:
    """A cut line, a repeated iteration, an iteration past the plan and a missing result.json are skipped and
    named while the intact reports are delivered; two runs a lost answer made for one trial become one; an
    experiment whose launch run was lost gets one back; `reslab tracking sync` exits 1 naming what is missing."""
    import sqlite3
    import subprocess
    import sys

    from mlflow import MlflowClient

    from reslab.tracking.sync import sync_experiment

    def report(iteration: int, error: float = 0.5) -> dict[str, Any]:
        return {"iteration": iteration, "test_error": error, "train_error": 0.4, "timestamp": 1_700_000_000 + iteration}

    grid = params(layer_responses=False)
    folder = tmp_path / "lines-smoke"
    write_experiment(
        folder,
        {
            "cut": (grid, [report(2), report(4)]),
            "repeated": (grid, [report(2, 0.9), report(2, 0.6), report(4)]),
            "beyond": (grid, [report(2), report(4), report(9)]),
            "nofile": (grid, []),
        },
    )
    (folder / "grid.json").write_text(json.dumps({"fingerprint": "x", "trials": 4}))
    with (folder / "cut" / "result.json").open("a") as cut:
        cut.write('{"trial_id": "cut", "iteration": 6, "test_err')  # a crash mid-write
    (folder / "nofile" / "result.json").unlink()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("lines-smoke")  # the launch's create_run was lost: no launch run
    twins = [client.create_run(experiment, tags={TRIAL_TAG: "repeated"}).info.run_id for _ in range(2)]
    from mlflow.entities import Metric

    when = 1000 * report(2)["timestamp"]  # the twin that got iteration 2, as the live writer logs a report
    client.log_batch(twins[1], metrics=[Metric("test_error", 0.6, when, 2), Metric("train_error", 0.4, when, 2)])

    synced = sync_experiment(folder, uri, driver_gone=True)
    assert synced.trials == 3 and sorted(synced.trial_ids) == ["beyond", "cut", "repeated"]
    problems = "\n".join(synced.problems)
    assert "cut/result.json line 3 is not a report" in problems
    assert "beyond/result.json line 3: iteration 9 is not in 0..4" in problems
    assert "nofile: no result.json (the trial never reported)" in problems
    assert problems.count("its net is not logged and it has no checkpoint to log it from") == 3  # no checkpoints

    runs = client.search_runs([experiment])
    trials = {r.data.tags[TRIAL_TAG]: r for r in runs if TRIAL_TAG in r.data.tags}
    assert len([r for r in runs if TRIAL_TAG in r.data.tags]) == 3  # the twins merged into one run
    assert trials["repeated"].info.run_id == twins[1]  # the one with the most steps is kept
    assert client.get_run(twins[0]).info.lifecycle_stage == "deleted"
    assert [r.data.tags.get(LAUNCH_TAG) for r in runs].count("true") == 1  # the launch run made again
    assert {r.info.status for r in runs} == {"FINISHED"}  # every run closed, the launch's too
    history = {m.step: m.value for m in client.get_metric_history(twins[1], "test_error")}
    assert history == {2: 0.6, 4: 0.5}  # the repeated iteration's last report
    assert run_status("FINISHED", trials["cut"].data.tags) == "finished"  # from its highest intact iteration
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        rows = db.execute("select run_uuid, key, step, count(*) from metrics group by run_uuid, key, step").fetchall()
    assert {n for *_, n in rows} == {1} and len(rows) == 3 * 2 * 2, rows  # one row per (run, key, step)

    again = sync_experiment(folder, uri, driver_gone=True)  # nothing new, and no row twice
    assert (again.runs_created, again.steps_logged, again.runs_closed) == (0, 0, 0)
    printed = subprocess.run(
        [str(Path(sys.executable).with_name("reslab")), "tracking", "sync", str(folder), "--tracking-uri", uri],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert printed.returncode == 1 and "not delivered: cut/result.json line 3" in printed.stdout, printed.stdout
    assert "6 things not delivered" in printed.stderr and "Traceback" not in printed.stderr


def test_a_finished_run_whose_net_failed_to_log_gets_it_from_the_next_sync_and_is_registered(tmp_path: Path) -> None:
    """A store that lost the model upload (the run closed with its MODEL_ERROR_TAG, no net): the next sync logs
    the net from the trial's latest checkpoint, clears the error, and the registration that follows makes the
    version with `@best`."""
    from mlflow import MlflowClient

    from reslab.tracking.layout import MODEL_ERROR_TAG, MODEL_TAG
    from reslab.tracking.registry import register_study_models
    from reslab.tracking.sync import sync_experiment

    folder = tmp_path / "lost-smoke"
    (folder / "t1").mkdir(parents=True)
    recorder = Recorder()
    trial_params = params(layer_responses=False)
    trial_params["trial"]["config"]["dataset"] = "synthetic"
    run_trial(trial_params, recorder.session(folder / "t1"), {}, gpu_ids=[])
    (folder / "t1" / "params.json").write_text(json.dumps(trial_params))
    (folder / "t1" / "result.json").write_text(
        "".join(json.dumps({**r, "trial_id": "t1"}) + "\n" for r in recorder.reports)
    )
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    writer = MLflowWriter(uri, "lost-smoke", {}, {})
    writer.start_launch()
    trial = record("t1")
    for result in recorder.reports:
        writer.log_result(trial, result)
    writer.close(trial, recorder.reports[-1])  # finished, without its net
    client = MlflowClient(uri, registry_uri=uri)
    run_id = writer.run_for(trial, reopen=False)
    client.set_tag(run_id, MODEL_ERROR_TAG, "MlflowException: the upload's answer was lost")
    writer.end_launch()

    synced = sync_experiment(folder, uri, driver_gone=True)
    assert synced.problems == [] and synced.runs_closed == 1
    tags = client.get_run(run_id).data.tags
    assert tags[MODEL_TAG] == "cifar_resnet20" and MODEL_ERROR_TAG not in tags
    assert register_study_models(uri, "lost-smoke", synced.trial_ids, {}) == {"synthetic-cifar_resnet20-A": "1"}
    assert client.get_registered_model("synthetic-cifar_resnet20-A").aliases == {"best": 1}
