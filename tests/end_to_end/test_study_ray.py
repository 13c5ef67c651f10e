"""Studies end to end on a real Ray: the shipped smoke studies, divergence, a killed worker, a killed
driver, and a two-node cluster made with `ray start`. Every test runs the study as a subprocess."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO
from helpers import (
    answers,
    free_port,
    results,
    run,
    start_mlflow_server,
    stop,
    study_env,
    summary,
    tracked_runs,
    wait_for,
    write_study,
)
from reslab.store.seal import SEAL_FOLDER
from reslab.tracking.layout import METRICS

ray_version, mlflow_version = version("ray"), version("mlflow")

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", ["shortcut_ablation", "plain_vs_residual"])
def test_shipped_smoke_study_runs_on_the_real_subset(name: str, cifar_subset: Path, tmp_path: Path) -> None:
    done = run(
        REPO / "studies" / f"{name}.py",
        "--dataset",
        "cifar10",
        "--data-dir",
        str(cifar_subset),
        "--storage",
        str(tmp_path),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    table = summary(tmp_path / f"{name}_cifar10-smoke")
    assert (table["n"] == 1).all() and (table["failed"] == 0).all()
    finals = {lines[-1]["trial_id"]: lines[-1] for lines in results(tmp_path / f"{name}_cifar10-smoke").values()}
    # the table is the trials' final test errors, in percent (one seed each)
    assert sorted(table["test_error_mean"].round(6)) == sorted(round(100 * r["test_error"], 6) for r in finals.values())
    markdown = (tmp_path / f"{name}_cifar10-smoke" / "summary.md").read_text()
    assert markdown.split("### The paper's claims")[0].count("| cifar_") == len(table)  # one row per variant
    for trial in results(tmp_path / f"{name}_cifar10-smoke").values():
        assert trial[-1]["iteration"] == 24 and trial[-1]["device"] == "cpu"
    # the study's claims get verdicts; a smoke run is too short to test them, and says so everywhere
    verdicts = pd.read_csv(tmp_path / f"{name}_cifar10-smoke" / "verdicts.csv")
    assert len(verdicts) >= 3 and (verdicts["verdict"] == "not tested").all()
    assert verdicts["reason"].str.contains("smoke profile is too short").all()
    parents, _ = tracked_runs(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}", f"{name}_cifar10-smoke")
    tags = {k: v for k, v in parents[0].data.tags.items() if k.startswith("reslab.verdict.")}
    assert tags == {f"reslab.verdict.{c}": "not tested" for c in verdicts["claim"]}


def test_a_diverging_trial_is_marked_and_the_study_goes_on(tmp_path: Path) -> None:
    script = write_study(tmp_path, "divergence", "grid(lr=[0.1, 1e6])", {"model": "cifar_resnet20"})
    done = run(script, "--storage", str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    table = summary(tmp_path / "divergence-smoke")
    assert table.loc["lr=1000000.0", "diverged"] == 1 and table.loc["lr=1000000.0", "n"] == 0
    assert table.loc["lr=0.1", "n"] == 1 and table.loc["lr=0.1", "diverged"] == 0
    assert "diverged" in done.stdout


LONG = {"model": "cifar_resnet20", "iterations": 160, "eval_every": 20, "batch_size": 32}


def start_study(script: Path, folder: Path, *args: str) -> subprocess.Popen:
    """A study running in the background in `folder` (its storage and default MLflow store), output piped."""
    return subprocess.Popen(
        [sys.executable, str(script), "--storage", str(folder), *args],
        env=study_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=folder,
    )


SOAK = {"model": "cifar_resnet20", "iterations": 60, "eval_every": 10, "batch_size": 32}


def test_soak_three_killed_workers_lose_no_iteration_and_log_no_step_twice(cifar_subset: Path, tmp_path: Path) -> None:
    """Six trials on the real subset; three times a running trial's worker is SIGKILLed at a random point
    (after a random report, a random fraction of a report interval later). Every trial still reaches its
    planned iterations, resuming from its checkpoint, and MLflow holds every metric step exactly once."""
    from mlflow import MlflowClient

    script = write_study(tmp_path, "soak", "grid(lr=[0.1, 0.05, 0.02], momentum=[0.9, 0.8])", SOAK)
    driver = start_study(script, tmp_path, "--data-dir", str(cifar_subset), "--max-concurrent-trials", "2")
    experiment = tmp_path / "soak-smoke"
    rng = random.Random(14)
    kills: dict[int, tuple[str, int]] = {}  # pid -> (trial, the iteration of its last report before the kill)

    def running_past(threshold: int) -> tuple[str, dict] | None:
        for name, lines in results(experiment).items():
            if lines and threshold <= lines[-1]["iteration"] < 60 and lines[-1]["pid"] not in kills:
                return name, lines[-1]
        return None

    while len(kills) < 3:
        threshold = rng.choice([10, 20, 30, 40])
        wait_for(lambda t=threshold: running_past(t) or driver.poll() is not None, 600, f"a trial past {threshold}")
        assert driver.poll() is None, "the study ended before three workers were killed"
        name, last = running_past(threshold)
        time.sleep(rng.uniform(0, 1.5))  # somewhere between two reports
        latest = results(experiment)[name][-1]  # it may have reported again meanwhile
        if latest["iteration"] >= 60 or latest["pid"] != last["pid"]:
            continue  # it finished meanwhile: pick again
        os.kill(last["pid"], signal.SIGKILL)
        kills[last["pid"]] = (name, latest["iteration"])
    output, _ = driver.communicate(timeout=900)
    assert driver.returncode == 0, output[-3000:]
    assert output.count("lost its worker: retried from its last checkpoint") == 3, output[-3000:]

    trials = results(experiment)
    assert len(trials) == 6 and all(lines[-1]["iteration"] == 60 for lines in trials.values())
    for pid, (name, reached) in kills.items():
        last_of_killed = max(i for i, r in enumerate(trials[name]) if r["pid"] == pid)
        retry = trials[name][last_of_killed + 1]  # the first report of the worker that took over
        assert retry["resumed_from"] >= reached, (name, reached, retry)  # from its checkpoint, not from 0
    assert (summary(experiment)["n"] == 1).all()
    client = MlflowClient(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("soak-smoke").experiment_id])
    children = [r for r in runs if "ray.trial_id" in r.data.tags]
    assert len(children) == 6 and {r.info.status for r in children} == {"FINISHED"}
    every_report = {"train_error", "test_error", "train_loss", "test_loss", "lr", "images_per_second"}
    for child in children:
        logged = set(child.data.metrics) & set(METRICS)  # validation and top-5 errors only where measured
        assert logged == every_report, (child.info.run_name, logged)
        for metric in logged:
            steps = sorted(m.step for m in client.get_metric_history(child.info.run_id, metric))
            assert steps == list(range(10, 61, 10)), (child.info.run_name, metric, steps)  # each step exactly once


def test_a_killed_driver_is_restored_and_finished_trials_are_not_rerun(tmp_path: Path) -> None:
    script = write_study(tmp_path, "driver_kill", "grid(lr=[0.1, 0.05, 0.02])", LONG)
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [sys.executable, str(script), "--storage", str(tmp_path), "--max-concurrent-trials", "1"]
    driver = subprocess.Popen(
        [*args, "--tracking-uri", store],
        env=study_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        cwd=tmp_path,
    )
    experiment = tmp_path / "driver_kill-smoke"

    def running(trials: dict[str, list[dict]]) -> str | None:
        return next((name for name, lines in trials.items() if lines and lines[-1]["iteration"] < 160), None)

    def one_finished_one_checkpointed_twice() -> bool:
        trials = results(experiment)
        finished = [t for t in trials.values() if t and t[-1]["iteration"] == 160]
        return len(finished) >= 1 and (name := running(trials)) is not None and len(trials[name]) >= 2

    wait_for(one_finished_one_checkpointed_twice, 300, "one finished trial and a second one with two checkpoints")
    second = run(script, "--storage", str(tmp_path), "--max-concurrent-trials", "1", "--tracking-uri", store)
    assert second.returncode == 2 and f"already being run by another driver (pid {driver.pid} " in second.stderr
    unfinished = running(results(experiment))
    os.kill(results(experiment)[unfinished][-1]["pid"], signal.SIGSTOP)  # no checkpoint newer than Tune knows
    time.sleep(1.5)  # past TUNE_GLOBAL_CHECKPOINT_S (1 s): the experiment state records the finished trial
    before = results(experiment)
    os.killpg(driver.pid, signal.SIGKILL)  # the driver and the Ray it started: its lock goes with it
    driver.wait()
    *_, latest = sorted((experiment / unfinished).glob("checkpoint_*"))
    (latest / "checkpoint.pt").write_bytes(b"a torn write" * 100)  # the trial's latest checkpoint is damaged
    done = run(script, "--storage", str(tmp_path), "--max-concurrent-trials", "1", "--tracking-uri", store)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "restoring" in done.stdout
    resumed = before[unfinished][-2]["iteration"]  # each report wrote a checkpoint: the one before the last
    assert f"resumed from iteration {resumed}, skipping a damaged checkpoint: {latest.name} unreadable" in done.stdout
    after = results(experiment)
    assert len(after) == 3  # every grid point exactly once
    for name, lines in before.items():
        if lines and lines[-1]["iteration"] == 160:
            assert after[name] == lines  # a finished trial was not run again
    assert all(lines[-1]["iteration"] == 160 for lines in after.values())
    assert (summary(experiment)["n"] == 1).all()
    parents, children = tracked_runs(store, "driver_kill-smoke")
    assert sorted(p.info.status for p in parents) == ["FINISHED", "KILLED"]  # the dead launch is closed as KILLED
    assert len(children) == 3  # exactly one MLflow run per trial across both launches
    for child, history in children.items():
        assert history == [20, 40, 60, 80, 100, 120, 140, 160], child  # every step exactly once


def alive_nodes(address: str, env: dict[str, str]) -> int:
    """How many live nodes the cluster at `address` has (0 when it does not answer)."""
    probe = "import ray; ray.init(); print(sum(n['Alive'] for n in ray.nodes()))"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "RAY_ADDRESS": address},
        check=False,
    )
    return int(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 and done.stdout.strip() else 0


def stop_nodes(nodes: list[subprocess.Popen]) -> None:
    """End the raylets this test started, each by its own process group (never `ray stop`)."""
    for node in reversed(nodes):
        os.killpg(node.pid, signal.SIGTERM)
    for node in nodes:
        try:
            node.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(node.pid, signal.SIGKILL)


def test_a_two_node_cluster_runs_trials_on_both_nodes(tmp_path: Path) -> None:
    ray = str(Path(sys.executable).with_name("ray"))
    address = f"127.0.0.1:{free_port()}"
    env = study_env(RAY_AUTH_MODE="token")  # token authentication, Ray's default for clusters now
    nodes = []

    def ray_start(*args: str) -> None:
        """A raylet in the foreground (--block) of its own process group, so the test stops exactly its own
        nodes; `ray stop` would end every Ray instance on the machine, a developer's running studies too."""
        node = [ray, "start", "--block", "--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--num-gpus", "1"]
        nodes.append(
            subprocess.Popen(
                [*node, "--disable-usage-stats", *args],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )

    try:
        ray_start("--head", "--port", address.split(":")[1], "--include-dashboard", "false")
        wait_for(lambda: alive_nodes(address, env) == 1, 120, "the head node")
        ray_start("--address", address)  # a second raylet: the worker node
        wait_for(lambda: alive_nodes(address, env) == 2, 120, "the worker node to join")
        settings = {"model": "cifar_resnet20", "iterations": 40, "eval_every": 20, "batch_size": 32}
        script = write_study(tmp_path, "two_nodes", "grid(lr=[0.1, 0.05, 0.02, 0.01])", settings)
        on_cluster = {**env, "RAY_ADDRESS": address}

        # a folder and an sqlite file on the driver's disk, on two nodes: refused before anything is written
        done = run(script, "--storage", str(tmp_path), env=on_cluster)
        assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
        [message] = done.stderr.strip().splitlines()
        assert "the cluster has 2 nodes" in message and f"--storage {tmp_path} and the MLflow store sqlite:" in message
        assert "--storage s3://" in message and "--shared-storage" in message
        assert not (tmp_path / "two_nodes-smoke").exists() and not (tmp_path / "runs").exists()

        # declared shared (as NFS would be): the trials hold fake GPUs that torch cannot use, so each fails
        # at once saying so, and is not retried
        cuda = write_study(tmp_path, "no_cuda", "grid(lr=[0.1, 0.05])", settings)
        done = run(cuda, "--storage", str(tmp_path), "--shared-storage", env=on_cluster)
        assert done.returncode == 1, done.stderr[-3000:]
        for lines in results(tmp_path / "no_cuda-smoke").values():
            assert len(lines) == 1 and lines[0]["failed"], lines
            assert "CudaUnavailable: this trial holds GPU 0 but torch" in lines[0]["failed_reason"]
            assert "--allow-cpu-fallback" in lines[0]["failed_reason"]
        assert not list((tmp_path / "no_cuda-smoke").glob("*/error*")), "a CUDA failure was retried"

        args = ("--storage", str(tmp_path), "--shared-storage", "--allow-cpu-fallback")
        done = run(script, *args, env=on_cluster)
        assert done.returncode == 0, done.stderr[-3000:]
    finally:
        stop_nodes(nodes)
    from reslab.launch.preflight import _live_local_cluster

    assert _live_local_cluster() is None  # the address file `ray start` left names a dead cluster: not joined
    trials = results(tmp_path / "two_nodes-smoke")
    assert len(trials) == 4
    assert len({lines[-1]["node_id"] for lines in trials.values()}) == 2  # trials ran on both nodes
    for lines in trials.values():  # each got a quarter of a declared GPU and fell back to the CPU, as allowed
        assert lines[-1]["gpu_ids"] == "0" and lines[-1]["device"] == "cpu" and lines[-1]["iteration"] == 40


def test_layer_responses_study_writes_fig7_data(tmp_path: Path) -> None:
    done = run(REPO / "studies" / "layer_responses.py", "--storage", str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    responses = pd.read_csv(tmp_path / "layer_responses-smoke" / "layer_responses.csv")
    layers = responses.groupby("variant")["layer"].max().to_dict()
    assert layers == {
        "cifar_plain20": 19,
        "cifar_plain56": 55,
        "cifar_resnet20": 19,
        "cifar_resnet56": 55,
        "cifar_resnet110": 109,
    }
    assert (responses["std"] > 0).all()
    assert "Layer responses" in (tmp_path / "layer_responses-smoke" / "summary.md").read_text()

    # the same table is an artifact of each trial's MLflow run (default store: runs/ in the working directory)
    from mlflow import MlflowClient
    from mlflow.artifacts import download_artifacts

    uri = f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("layer_responses-smoke").experiment_id
    trial_runs = [r for r in client.search_runs([experiment]) if "ray.trial_id" in r.data.tags]
    assert len(trial_runs) == 5
    for trial_run in trial_runs:
        path = download_artifacts(
            run_id=trial_run.info.run_id,
            artifact_path="layer_responses.csv",
            dst_path=str(tmp_path / "dl"),
            tracking_uri=uri,
        )
        logged = pd.read_csv(path)
        variant = trial_run.data.tags["reslab.variant"]
        expected = responses.loc[responses["variant"] == variant, "std"].to_numpy()
        assert len(logged) == layers[variant] and (logged["std"].to_numpy() == expected).all()


@pytest.mark.parametrize("name", ["cifar_depth", "imagenet_depth"])
def test_depth_studies_run_their_smoke_profile(name: str, tmp_path: Path) -> None:
    done = run(REPO / "studies" / f"{name}.py", "--storage", str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    table = summary(tmp_path / f"{name}-smoke")
    variants = {"cifar_depth": 6, "imagenet_depth": 5}[name]  # plain and residual nets of each smoke depth
    assert len(table) == variants and (table["n"] == 1).all() and (table["failed"] == 0).all()


def test_lr_search_samples_with_optuna_and_stops_with_asha(tmp_path: Path) -> None:
    done = run(REPO / "studies" / "lr_search.py", "--storage", str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    table = pd.read_csv(tmp_path / "lr_search-smoke" / "summary.csv")
    assert len(table) == 4 and table["lr"].nunique() == 4  # four distinct samples
    assert table["lr"].between(0.01, 1.0).all() and table["weight_decay"].between(1e-5, 1e-3).all()
    assert set(table["status"]) <= {"finished", "stopped", "diverged"} and (table["status"] == "finished").any()
    assert table.iloc[0]["status"] == "finished"  # the best row is a finished trial
    assert "Best finished trial: lr=" in done.stdout and "selected on the validation split" in done.stdout
    assert table["validation_error"].notna().all() and table["test_error"].notna().all()
    finished = table[table["status"] == "finished"]
    assert finished["validation_error"].is_monotonic_increasing  # ranked on what it selected on

    # Optuna's study is a journal beside the results: the same four samples, and optuna-dashboard serves it
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    journal = tmp_path / "lr_search-smoke" / "optuna.journal"
    assert f"search: optuna-dashboard {journal}" in done.stdout
    searched = optuna.load_study(study_name="lr_search-smoke", storage=JournalStorage(JournalFileBackend(str(journal))))
    assert sorted(t.params["sampled/lr"] for t in searched.trials) == pytest.approx(sorted(table["lr"]))
    # Optuna's objective is each trial's validation error, never its test error
    by_lr = {round(t.params["sampled/lr"], 9): t.value for t in searched.trials}
    for row in table.itertuples():
        assert by_lr[round(row.lr, 9)] == pytest.approx(row.validation_error / 100)
    port = free_port()
    dashboard = subprocess.Popen(
        [str(Path(sys.executable).with_name("optuna-dashboard")), str(journal), "--host", "127.0.0.1", "--port",
         str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        import urllib.request

        def answers() -> bool:
            with contextlib.suppress(OSError):
                return urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=2).status == 200
            return False

        wait_for(answers, 60, "optuna-dashboard")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=10) as answer:
            summaries = json.load(answer)["study_summaries"]
        assert [s["study_name"] for s in summaries] == ["lr_search-smoke"]
        study_id = summaries[0]["study_id"]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies/{study_id}?after=0", timeout=10) as answer:
            assert len(json.load(answer)["trials"]) == 4
    finally:
        os.killpg(dashboard.pid, signal.SIGTERM)
        dashboard.wait(timeout=30)


def test_a_data_parallel_trial_trains_on_two_gloo_workers_and_resumes_when_killed(tmp_path: Path) -> None:
    """The same trial loop on 2 Ray Train workers (gloo): DDP keeps the replicas identical, a diverging trial
    is marked, Fig. 7 is reported; killing the trial's process makes Tune retry it, and its new workers
    continue from the checkpoint rank 0 wrote (after freeing the lost workers' reservation)."""
    script = write_study(
        tmp_path,
        "data_parallel",
        "grid(lr=[1e6, 0.1])",
        {**LONG, "iterations": 100},
        layer_responses=True,  # Fig. 7 from a data-parallel trial too: the same loop as a single-process one
    )
    driver = start_study(script, tmp_path, "--data-parallel", "2")
    experiment = tmp_path / "data_parallel-smoke"

    def training(at_least: int) -> list[dict]:
        lines = [r for trial in results(experiment).values() for r in trial if not r.get("diverged")]
        return lines if lines and lines[-1]["iteration"] >= at_least else []

    wait_for(lambda: training(40), 400, "the data-parallel trial to pass iteration 40")
    victim = training(40)[-1]["pid"]  # the trial's own process, which coordinates its Ray Train workers
    os.kill(victim, signal.SIGKILL)
    output, _ = driver.communicate(timeout=600)
    assert driver.returncode == 0, output[-3000:]
    trials = results(experiment).values()
    [diverged] = [lines for lines in trials if lines[-1].get("diverged")]
    [trained] = [lines for lines in trials if not lines[-1].get("diverged")]
    assert [r["iteration"] for r in trained if r["pid"] == victim][:2] == [20, 40]
    assert trained[-1]["iteration"] == 100 and trained[-1]["pid"] != victim
    assert trained[-1]["resumed_from"] >= 40  # the retry continued from the checkpoint, not from iteration 0
    assert all(r["world_size"] == 2 and r["replica_spread"] == 0.0 for r in trained)  # DDP kept replicas identical
    assert 0 <= trained[-1]["test_error"] <= 1
    assert len(trained[-1]["layer_responses"]) == 19 and "layer_responses" not in trained[0]
    assert diverged[-1]["diverged"] and "training loss became" in diverged[-1]["diverged_reason"]
    table = summary(experiment)
    assert table.loc["lr=0.1", "n"] == 1
    assert table.loc["lr=1000000.0", "diverged"] == 1 and table.loc["lr=1000000.0", "n"] == 0
    _, children = tracked_runs(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}", "data_parallel-smoke")
    assert children["lr=0.1-seed0"] == list(range(20, 101, 20))  # one run, each step once, across the retry


def test_a_real_mlflow_server_receives_the_study(tmp_path: Path) -> None:
    port = free_port()
    server = start_mlflow_server(tmp_path, port)
    uri = f"http://127.0.0.1:{port}"
    try:
        from reslab.tracking import check_reachable

        wait_for(lambda: answers(check_reachable, uri), 120, "the MLflow server to answer")
        settings = {"model": "cifar_resnet20", "iterations": 24, "eval_every": 12, "batch_size": 32}
        script = write_study(tmp_path, "served", "grid(lr=[0.1, 0.05])", settings)
        done = run(script, "--storage", str(tmp_path), "--tracking-uri", uri)
        assert done.returncode == 0, done.stderr[-3000:]
        parents, children = tracked_runs(uri, "served-smoke")
        assert [p.info.status for p in parents] == ["FINISHED"]
        tags = parents[0].data.tags
        assert tags["profile"] == "smoke" and len(tags["git_commit"]) == 40 and tags["git_dirty"] in ("true", "false")
        assert tags["ray_version"] == ray_version and tags["mlflow_version"] == mlflow_version
        assert children == {"lr=0.1-seed0": [12, 24], "lr=0.05-seed0": [12, 24]}
        from mlflow import MlflowClient

        client = MlflowClient(uri)
        assert [a.path for a in client.list_artifacts(parents[0].info.run_id)] == ["study.json"]
        run0 = client.search_runs(
            [client.get_experiment_by_name("served-smoke").experiment_id], "attributes.run_name = 'lr=0.05-seed0'"
        )[0]
        assert run0.data.params["recipe.lr"] == "0.05" and run0.data.params["model"] == "cifar_resnet20"
        assert run0.info.status == "FINISHED" and 0 <= run0.data.metrics["test_error"] <= 1
    finally:
        stop(server)


def test_a_study_registers_its_best_nets_and_a_pulled_net_predicts_as_trained(
    cifar_subset: Path, tmp_path: Path
) -> None:
    import torch

    from reslab import load_model as load
    from reslab.data import load_cifar10
    from reslab.data.stream import Normalizer
    from reslab.tracking.registry import model_from_checkpoint

    uri = f"sqlite:///{tmp_path / 'store.db'}"
    settings = {"model": "cifar_resnet20", "iterations": 24, "eval_every": 12, "batch_size": 32}
    first = write_study(tmp_path, "shortcuts", "grid(shortcut=['A', 'B'])", settings)
    second = write_study(tmp_path, "again", "grid(shortcut=['A'])", {**settings, "lr": 0.05})
    for script in (first, second):
        done = run(script, "--storage", str(tmp_path), "--data-dir", str(cifar_subset), "--tracking-uri", uri)
        assert done.returncode == 0, done.stderr[-3000:]
    assert "registered models:/cifar10-cifar_resnet20-A/2 (alias @best)" in done.stdout

    from mlflow import MlflowClient

    client = MlflowClient(uri, registry_uri=uri)
    assert client.get_registered_model("cifar10-cifar_resnet20-A").aliases == {"best": 2}
    assert client.get_registered_model("cifar10-cifar_resnet20-B").aliases == {"best": 1}
    version = client.get_model_version_by_alias("cifar10-cifar_resnet20-A", "best")
    run_ = client.get_run(version.run_id)
    assert version.tags["study"] == "again" and run_.info.run_name == "A-seed0"
    assert float(version.tags["test_error"]) == run_.data.metrics["test_error"]
    # each finished trial's net is an MLflow 3 Logged Model of its run, and the version is made from it
    import mlflow
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    with _use_tracking_uri(uri):
        logged = mlflow.search_logged_models(experiment_ids=[run_.info.experiment_id], output_format="list")
    assert [m.source_run_id for m in logged] == [run_.info.run_id]
    assert version.source == f"models:/{logged[0].model_id}" and logged[0].params["seed"] == "0"

    listed = subprocess.run(
        [str(Path(sys.executable).with_name("reslab")), "models", "list", "--tracking-uri", uri],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "cifar10-cifar_resnet20-A" in listed and "cifar10-cifar_resnet20-B" in listed and "best" in listed
    subprocess.run(
        [
            str(Path(sys.executable).with_name("reslab")),
            "models",
            "pull",
            "cifar10-cifar_resnet20-A@best",
            "--out",
            str(tmp_path / "pulled"),
            "--tracking-uri",
            uri,
        ],
        capture_output=True,
        text=True,
        check=True,
    )

    # the net as trained: the trial's final checkpoint in Ray's storage, which the run points to
    trained, spec = model_from_checkpoint(Path(run_.data.tags["reslab.checkpoint"]) / "checkpoint.pt")
    splits = load_cifar10(cifar_subset)
    images = Normalizer(splits.train, spec.normalization)(splits.test.images[:256])
    expected = trained(images)
    for pulled in (
        load("models:/cifar10-cifar_resnet20-A@best", tracking_uri=uri),
        load(tmp_path / "pulled" / "model"),
    ):
        assert torch.equal(pulled(images), expected)


def test_eight_trials_lose_no_metric_row_in_the_local_store(tmp_path: Path) -> None:
    """8 trials into the default SQLite store (as many at a time as the CPUs allow; the driver is the one
    writer): every reported metric value is exactly one row."""
    import sqlite3

    settings = {"model": "cifar_resnet20", "iterations": 24, "eval_every": 6, "batch_size": 16}
    script = write_study(tmp_path, "eight", "grid(lr=[0.1, 0.09, 0.08, 0.07, 0.06, 0.05, 0.04, 0.03])", settings)
    done = run(script, "--storage", str(tmp_path), "--max-concurrent-trials", "8")
    assert done.returncode == 0, done.stderr[-3000:]
    reported = sum(
        sum(isinstance(r.get(k), int | float) for k in METRICS for r in lines)
        for lines in results(tmp_path / "eight-smoke").values()
    )
    with contextlib.closing(sqlite3.connect(tmp_path / "runs" / "mlflow.db")) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        rows = db.execute("SELECT count(*) FROM metrics").fetchone()[0]
        steps = db.execute("SELECT count(DISTINCT run_uuid || key || step) FROM metrics").fetchone()[0]
    assert reported == 8 * 4 * 6  # 4 reports per trial, each with six metrics (no validation or top-5 here)
    assert rows == steps == reported
    print(f"8 trials: {reported} metric values reported, {rows} rows in the store")


def test_a_server_lost_mid_study_loses_no_result(tmp_path: Path) -> None:
    """The server dies after the first reports: the study finishes, says how to sync, and after the server
    is back `reslab tracking sync` delivers every missing step once, closes the runs and registers the nets."""
    from mlflow import MlflowClient

    from reslab.tracking import check_reachable

    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    server = start_mlflow_server(tmp_path, port)
    try:
        wait_for(lambda: answers(check_reachable, uri), 120, "the MLflow server to answer")
        settings = {"model": "cifar_resnet20", "iterations": 120, "eval_every": 6, "batch_size": 16}
        script = write_study(tmp_path, "lost", "grid(lr=[0.1, 0.05])", settings)
        study = subprocess.Popen(
            # the server stays away: the study ends without waiting 120 s for it
            [sys.executable, str(script), "--storage", str(tmp_path), "--tracking-uri", uri, "--store-wait", "3"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=study_env(),
            cwd=tmp_path,
        )

        def first_report_logged() -> bool:
            client = MlflowClient(uri)
            found = client.get_experiment_by_name("lost-smoke")
            runs = client.search_runs([found.experiment_id]) if found else []
            return any("test_error" in r.data.metrics for r in runs)

        wait_for(first_report_logged, 300, "the first report to reach the server")
        stop(server)
        stdout, stderr = study.communicate(timeout=600)
        assert study.returncode == 1, stderr[-3000:]  # trained, but its store lacks the results: not a success
        assert "stopped answering" in stderr and f"reslab tracking sync {tmp_path / 'lost-smoke'}" in stdout
        _, partial = tracked_runs_offline(tmp_path / "server.db", "lost-smoke")
        assert all(len(steps) < 20 for steps in partial.values())  # the server really missed reports

        server = start_mlflow_server(tmp_path, port)
        wait_for(lambda: answers(check_reachable, uri), 120, "the MLflow server to answer again")
        reslab = str(Path(sys.executable).with_name("reslab"))
        synced = subprocess.run(
            [reslab, "tracking", "sync", str(tmp_path / "lost-smoke"), "--tracking-uri", uri],
            capture_output=True,
            text=True,
            check=False,
        )
        assert synced.returncode == 0, synced.stderr[-3000:]
        _, children = tracked_runs(uri, "lost-smoke")
        assert children == {"lr=0.1-seed0": list(range(6, 121, 6)), "lr=0.05-seed0": list(range(6, 121, 6))}
        client = MlflowClient(uri)
        runs = client.search_runs(
            [client.get_experiment_by_name("lost-smoke").experiment_id], "tags.`ray.trial_id` != ''"
        )
        assert {r.info.status for r in runs} == {"FINISHED"} and all("reslab.model" in r.data.tags for r in runs)
        assert {k: str(v) for k, v in client.get_registered_model("synthetic-cifar_resnet20-A").aliases.items()} == {
            "best": "1"
        }
        again = subprocess.run(
            [reslab, "tracking", "sync", str(tmp_path / "lost-smoke"), "--tracking-uri", uri],
            capture_output=True,
            text=True,
            check=True,
        )
        assert "0 runs created, 0 missing steps logged, 0 runs closed" in again.stdout  # idempotent
    finally:
        if server.poll() is None:
            stop(server)


def tracked_runs_offline(db: Path, experiment: str) -> tuple[list, dict[str, list[int]]]:
    """The same view as `tracked_runs`, read from a stopped server's SQLite file."""
    return tracked_runs(f"sqlite:///{db}", experiment)


def test_missing_data_on_a_node_fails_its_trial_once_and_is_refused_before_trials_once_seen(
    cifar_subset: Path, tmp_path: Path
) -> None:
    """`--data-dir ~/cifar` exists in the driver's home but not in the worker node's. A node that joins after
    the launch (as an autoscaled one does) gets the trial, which fails once with the reason, not 4 times; a
    launch onto the cluster once that node is up is refused before any trial, naming the node."""
    ray = str(Path(sys.executable).with_name("ray"))
    address = f"127.0.0.1:{free_port()}"
    env = study_env(RAY_AUTH_MODE="disabled", HOME=str(tmp_path / "driver"))  # a token would live in a home
    (tmp_path / "driver").mkdir()
    (tmp_path / "driver" / "cifar").symlink_to(cifar_subset)
    worker_home = tmp_path / "worker"  # no cifar/ here
    worker_home.mkdir()
    nodes = []

    def ray_start(home: Path, cpus: int, *args: str) -> None:
        node = [ray, "start", "--block", "--node-ip-address", "127.0.0.1", "--num-cpus", str(cpus)]
        nodes.append(
            subprocess.Popen(
                [*node, "--disable-usage-stats", *args],
                env={**env, "HOME": str(home)},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        )

    settings = {"model": "cifar_resnet20", "iterations": 24, "eval_every": 12, "batch_size": 32}
    args = ("--data-dir", "~/cifar", "--profile", "smoke", "--storage", str(tmp_path))
    try:
        ray_start(tmp_path / "driver", 0, "--head", "--port", address.split(":")[1], "--include-dashboard", "false")
        wait_for(lambda: alive_nodes(address, env) == 1, 120, "the head node")
        script = write_study(tmp_path, "late_node", "[{'lr': 0.1}]", settings)
        launch = subprocess.Popen(
            [sys.executable, str(script), *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
            env={**env, "RAY_ADDRESS": address},
        )  # fmt: skip
        console = []
        for line in launch.stdout:  # the head has no CPU: the trial waits for a node, checked at launch: none
            console.append(line)
            if "1 trials on the cluster" in line:
                break
        ray_start(worker_home, 1, "--address", address)
        console += launch.stdout.readlines()
        assert launch.wait(timeout=600) == 1, "".join(console)[-3000:]  # a failed trial: exit 1
        text = "".join(console)
        assert "failed: DatasetNotFoundError" in text and str(worker_home / "cifar") in text
        trials = results(tmp_path / "late_node-smoke")
        [lines] = trials.values()
        assert len(lines) == 1 and lines[0]["failed"] and "CIFAR-10 not found" in lines[0]["failed_reason"]
        [folder] = [p for p in (tmp_path / "late_node-smoke").iterdir() if p.is_dir() and p.name != SEAL_FOLDER]
        assert not list(folder.glob("error*")), "the trial raised into Tune (and was retried)"
        assert summary(tmp_path / "late_node-smoke").loc["lr=0.1", "failed"] == 1

        # the worker is up now: a new launch is refused before any trial, naming that node
        script = write_study(tmp_path, "refused", "[{'lr': 0.1}]", settings)
        done = run(script, *args, env={**env, "RAY_ADDRESS": address})
        assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
        assert "error: on node " in done.stderr and f"{worker_home / 'cifar'} does not exist" in done.stderr
        assert not (tmp_path / "refused-smoke").exists()  # no trial, no experiment folder
    finally:
        stop_nodes(nodes)


@pytest.fixture
def small_filesystem(tmp_path: Path):
    """A 200 MB tmpfs mounted for the test (root with CAP_SYS_ADMIN, as on this project's machines)."""
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small filesystem here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> None:
    with (folder / "filler").open("wb") as filler, contextlib.suppress(OSError):
        while True:
            filler.write(bytes(2**20))
            filler.flush()


def test_a_full_storage_stops_the_study_with_one_message_promotes_nothing_and_resumes(
    small_filesystem: Path, cifar_subset: Path, tmp_path: Path
) -> None:
    """The disk under --storage fills after two checkpoints: the study ends saying what to do, and the trial
    that errored is neither logged as a model nor registered; once space is freed, --resume finishes it from
    reslab's sealed state even when Tune's own copy was cut short. (A storage turned read-only mid-study cannot
    be made here: the mount stays busy while Ray writes there, so `remount,ro` fails with EBUSY until the study
    ends; test_storage.py checks that a read-only one is recognised.)"""
    from mlflow import MlflowClient

    settings = {"model": "cifar_resnet20", "iterations": 48, "eval_every": 4, "batch_size": 32}
    script = write_study(tmp_path, "faulty", "grid(lr=[0.1])", settings)
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    storage = small_filesystem
    args = ["--storage", str(storage), "--tracking-uri", store, "--data-dir", str(cifar_subset)]
    driver = subprocess.Popen(
        [sys.executable, str(script), *args], env=study_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, cwd=tmp_path,
    )  # fmt: skip
    wait_for(lambda: len(list(storage.glob("faulty-smoke/*/checkpoint_*"))) >= 2, 300, "two checkpoints")
    fill(storage)
    output, errors = driver.communicate(timeout=600)
    assert driver.returncode == 1, output[-2000:] + errors[-3000:]
    last = errors.strip().splitlines()[-1]
    assert last.startswith(f"faulty: error: storage full at {storage / 'faulty-smoke'}"), errors[-3000:]
    assert "free space (or make it writable) and run the study again with --resume" in last
    quiet = errors.replace(last, "")
    assert "Traceback" not in quiet and "No space left" not in quiet and "Read-only" not in quiet, errors[-3000:]
    client = MlflowClient(store, registry_uri=store)
    assert client.search_registered_models() == []  # the half-trained trial is not promoted
    experiment = client.get_experiment_by_name("faulty-smoke").experiment_id
    (trial,) = [r for r in client.search_runs([experiment]) if "ray.trial_id" in r.data.tags]
    assert trial.info.status != "FINISHED" and "reslab.model" not in trial.data.tags, trial

    (storage / "filler").unlink()
    for state in storage.glob("faulty-smoke/experiment_state-*.json"):  # as Ray's copy to the full disk left
        state.write_bytes(state.read_bytes()[:2048])  # it in 2 of 3 probes: cut short, unresumable by Tune
    resumed = subprocess.run(
        [sys.executable, str(script), *args, "--resume"], env=study_env(), capture_output=True, text=True,
        cwd=tmp_path, timeout=600,
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    assert "differed from what reslab sealed (cut short by a full disk, or altered)" in resumed.stdout
    (trial,) = [r for r in client.search_runs([experiment]) if "ray.trial_id" in r.data.tags]
    assert trial.info.status == "FINISHED", trial
    assert max(m.step for m in client.get_metric_history(trial.info.run_id, "test_error")) == 48
    (version,) = client.search_model_versions("name='cifar10-cifar_resnet20-A'")
    assert version.run_id == trial.info.run_id  # the finished trial, and only it, is promoted


class Payload:
    """A pickle that runs `touch <marker>` when loaded: what a hostile file in a shared storage would hold."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_restore_refuses_another_store_and_unpickles_only_the_state_reslab_sealed(tmp_path: Path) -> None:
    """Tune restores a study with the callbacks (and so the store) of its launch: a re-run naming another store
    is refused before anything is written there. Tune restores by unpickling tuner.pkl and its experiment
    state: a planted tuner.pkl is replaced by reslab's sealed copy before Tune reads it (its payload never
    runs), and an altered sealed copy or a state reslab never sealed is refused before Ray starts."""
    import pickle

    settings = {"model": "cifar_resnet20", "iterations": 4, "eval_every": 2, "batch_size": 16}
    script = write_study(tmp_path, "sealed", "grid(lr=[0.1])", settings)
    store, other = f"sqlite:///{tmp_path / 'mlflow.db'}", f"sqlite:///{tmp_path / 'other.db'}"
    args = ("--storage", str(tmp_path), "--tracking-uri", store)
    assert run(script, *args).returncode == 0
    refused = run(script, "--storage", str(tmp_path), "--tracking-uri", other)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    message = refused.stderr.strip().splitlines()[-1]
    assert f"launched tracking into {store}, but this run names {other}" in message
    assert f"pass --tracking-uri {store} to continue it" in message and "Traceback" not in refused.stderr
    assert not (tmp_path / "other.db").exists()

    experiment, marker = tmp_path / "sealed-smoke", tmp_path / "PAYLOAD_RAN"
    (experiment / "tuner.pkl").write_bytes(pickle.dumps(Payload(marker)))
    planted = run(script, *args)
    assert planted.returncode == 0, planted.stdout + planted.stderr
    assert f"tuner.pkl in {experiment} differed from what reslab sealed" in planted.stdout
    assert "restoring" in planted.stdout and not marker.exists()

    manifest = json.loads((experiment / ".reslab-state" / "manifest.json").read_text())
    sealed_tuner = experiment / ".reslab-state" / manifest["files"]["tuner.pkl"]["copy"]
    sealed_tuner.write_bytes(pickle.dumps(Payload(marker)))  # the attacker writes the sealed copy too
    altered = run(script, *args)
    assert altered.returncode == 2, altered.stdout + altered.stderr
    message = altered.stderr.strip().splitlines()[-1]
    assert "reslab's sealed copy of tuner.pkl was altered or cut short" in message, altered.stderr
    assert "Traceback" not in altered.stderr and "restoring" not in altered.stdout and not marker.exists()

    shutil.rmtree(experiment / ".reslab-state")
    unsealed = run(script, *args)
    message = unsealed.stderr.strip().splitlines()[-1]
    assert unsealed.returncode == 2 and "reslab did not seal" in message and "another --storage" in message
    assert "Traceback" not in unsealed.stderr and "restoring" not in unsealed.stdout and not marker.exists()
