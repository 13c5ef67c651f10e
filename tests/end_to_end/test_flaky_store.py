"""Exactly-once through a flaky server: a study tracked through a proxy that loses 30 % of the requests to a
real `mlflow server` (before the server sees them, or after it acted), then synced, holds one run per trial,
one row per (run, key, step), one launch, one version per net with its @best, and every run closed."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from flaky_proxy import flaky_proxy
from helpers import free_port, run, start_mlflow_server, stop, wait_for, write_study

# MLflow's client retries each request 7 times with backoff 2 (1 + 2 + 4 ... s): the sync through the proxy
# retries as often, sooner
QUICK_RETRIES = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "5", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0"}
SETTINGS = {"model": "cifar_resnet20", "iterations": 24, "eval_every": 4, "batch_size": 16}


def answers(uri: str) -> bool:
    from reslab.tracking import TrackingUnavailable, check_reachable

    try:
        check_reachable(uri, timeout=2)
        return True
    except TrackingUnavailable:
        return False


def store_counts(db: Path, experiment: str) -> dict[str, object]:
    """What the server's own database holds for the experiment, counted with SQL."""
    with sqlite3.connect(db) as con:
        (experiment_id,) = con.execute("select experiment_id from experiments where name = ?", (experiment,)).fetchone()
        live = "experiment_id = ? and lifecycle_stage = 'active'"
        trials = con.execute(
            f"select t.value, count(*) from runs r join tags t on t.run_uuid = r.run_uuid and t.key = 'ray.trial_id' "
            f"where {live} group by t.value", (experiment_id,)
        ).fetchall()  # fmt: skip
        launches = con.execute(
            f"select count(*) from runs r join tags t on t.run_uuid = r.run_uuid and t.key = 'reslab.launch' "
            f"where {live}", (experiment_id,)
        ).fetchone()[0]  # fmt: skip
        duplicated = con.execute(
            f"select m.run_uuid, m.key, m.step, count(*) from metrics m join runs r on r.run_uuid = m.run_uuid "
            f"where {live} group by m.run_uuid, m.key, m.step having count(*) > 1", (experiment_id,)
        ).fetchall()  # fmt: skip
        running = con.execute(f"select count(*) from runs where {live} and status = 'RUNNING'", (experiment_id,))
        running = running.fetchone()[0]
        steps = con.execute(
            f"select count(distinct m.run_uuid || ':' || m.step) from metrics m join runs r on r.run_uuid = m.run_uuid "
            f"where {live} and m.key = 'test_error'", (experiment_id,)
        ).fetchone()[0]  # fmt: skip
        versions = con.execute(  # MLflow deletes a version by marking it
            "select name, run_id, count(*) from model_versions where current_stage != 'Deleted_Internal' "
            "group by name, run_id"
        ).fetchall()
        aliases = con.execute(
            "select a.name, a.alias, v.run_id from registered_model_aliases a join model_versions v "
            "on v.name = a.name and v.version = a.version and v.current_stage != 'Deleted_Internal'"
        ).fetchall()
        best = con.execute(  # each net's finished trial with the lowest final test error
            f"select t.value, r.run_uuid, m.value from runs r join tags t on t.run_uuid = r.run_uuid "
            f"and t.key = 'reslab.registered_name' join latest_metrics m on m.run_uuid = r.run_uuid "
            f"and m.key = 'test_error' where {live} order by m.value desc", (experiment_id,)
        ).fetchall()  # fmt: skip
    lowest = {name: run for name, run, _ in best}  # ordered by error, highest first: the lowest stays
    return {
        "runs per trial": sorted(n for _, n in trials),
        "launches": launches,
        "duplicated rows": duplicated,
        "running": running,
        "test_error steps": steps,
        "versions per run": sorted(n for _, _, n in versions),
        "nets": sorted({name for name, _, _ in versions}),
        "best": sorted((name, "best", run) for name, run in lowest.items()),
        "aliases": sorted(aliases),
    }


@pytest.mark.slow
def test_a_study_through_a_flaky_server_is_tracked_exactly_once(tmp_path: Path) -> None:
    port = free_port()
    server = start_mlflow_server(tmp_path, port)
    direct = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: answers(direct), 120, "the MLflow server to answer")
        variants = "grid(model=['cifar_resnet20', 'cifar_plain20'], lr=[0.1, 0.05])"  # 4 trials, 2 nets
        script = write_study(tmp_path, "flaky", variants, SETTINGS)
        with flaky_proxy(port, rate=0.3, seed=7, max_failures=150) as proxy:
            done = run(script, "--storage", str(tmp_path), "--tracking-uri", proxy.url)
            synced = subprocess.run(
                [str(Path(sys.executable).with_name("reslab")), "tracking", "sync", str(tmp_path / "flaky-smoke"),
                 "--tracking-uri", proxy.url],
                capture_output=True, text=True, timeout=600, env={**os.environ, **QUICK_RETRIES},
            )  # fmt: skip
        # the study's own sync (8 tries, one retry a request) may not get through a store that loses 30 %: it
        # then says so and exits 1; `reslab tracking sync`, with MLflow's retries, delivers the rest
        assert done.returncode == 0 or (
            done.returncode == 1 and "when the store is back run: reslab tracking sync" in done.stdout
        ), done.stdout[-3000:] + done.stderr[-3000:]
        assert "Traceback" not in synced.stderr, synced.stderr
        assert sum(proxy.failures.values()) >= 20  # the proxy did lose requests, both ways
        assert proxy.failures["before"] and proxy.failures["after"]
        final = subprocess.run(
            [str(Path(sys.executable).with_name("reslab")), "tracking", "sync", str(tmp_path / "flaky-smoke"),
             "--tracking-uri", direct],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert final.returncode == 0, final.stdout + final.stderr
        counts = store_counts(tmp_path / "server.db", "flaky-smoke")
        assert counts["runs per trial"] == [1, 1, 1, 1], counts
        assert counts["duplicated rows"] == [], counts
        assert counts["test_error steps"] == 4 * 6, counts  # every report of every trial, once
        assert counts["launches"] >= 1 and counts["running"] == 0, counts
        assert counts["nets"] == ["synthetic-cifar_plain20", "synthetic-cifar_resnet20-A"], counts
        assert set(counts["versions per run"]) == {1}, counts  # no run registered twice
        assert counts["aliases"] == counts["best"], counts  # @best on each net's best trial
    finally:
        stop(server)
