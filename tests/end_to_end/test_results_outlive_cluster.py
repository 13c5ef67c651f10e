"""Results that outlive the cluster, as cluster/gpu.yaml keeps them: MLflow's backend in PostgreSQL (its
password from the environment, never in a URI or the YAML), MLflow's artifacts and Ray Tune's storage in
an S3 bucket. Real servers, started by the test on 127.0.0.1: Debian's PostgreSQL and moto's S3 server.

A smoke study logs to the MLflow server, which is restarted mid-study; nothing is lost. Then the MLflow
database is dropped (as if the head and its disk were gone), `reslab tracking sync s3://...` rebuilds the
runs from the bucket, and `reslab models pull` fetches a registered net whose files live in the bucket.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import BUCKET, bucket_client, stop_group
from helpers import answers, free_port, study_env, tracked_runs, wait_for, write_study

pytestmark = pytest.mark.slow

PASSWORD = "not-in-any-uri"  # reaches libpq as PGPASSWORD, as a head's environment would give it
BIN = Path(sys.executable).parent


def postgres_bin() -> Path | None:
    """Debian's PostgreSQL server programs (initdb, postgres), if installed."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def as_postgres_user(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as Debian's `postgres` user."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture
def postgres() -> Iterator[str]:
    """A PostgreSQL server on 127.0.0.1 with password authentication and an empty database `mlflow`;
    yields its address (host:port)."""
    programs = postgres_bin()
    if programs is None:
        pytest.skip("PostgreSQL is not installed (Debian's postgresql; .ci/run installs it)")
    folder = Path(tempfile.mkdtemp(prefix="rpg", dir="/tmp"))  # short, and reachable by the postgres user
    (folder / "password").write_text(PASSWORD)
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
        shutil.chown(folder / "password", "postgres")
    initdb = [str(programs / "initdb"), "-D", str(folder / "data"), "-U", "reslab", "-E", "UTF8"]
    initdb += ["--auth=scram-sha-256", f"--pwfile={folder / 'password'}"]
    subprocess.run(as_postgres_user(initdb), check=True, capture_output=True, timeout=120)
    port = free_port()
    server = subprocess.Popen(
        as_postgres_user([str(programs / "postgres"), "-D", str(folder / "data"), "-p", str(port),
                          "-k", str(folder), "-c", "listen_addresses=127.0.0.1"]),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(lambda: sql(port, "SELECT 1", "postgres"), 60, "PostgreSQL to accept connections")
        sql(port, "CREATE DATABASE mlflow", "postgres")
        yield f"127.0.0.1:{port}"
    finally:
        stop_group(server)
        shutil.rmtree(folder, ignore_errors=True)


def sql(port: int, statement: str, database: str = "mlflow") -> bool:
    import psycopg

    try:  # autocommit: CREATE / DROP DATABASE run outside a transaction
        connection = psycopg.connect(
            host="127.0.0.1", port=port, user="reslab", password=PASSWORD, dbname=database, autocommit=True
        )
    except psycopg.OperationalError:
        return False
    with connection:
        connection.execute(statement)
    return True


def bucket_keys(env: dict[str, str], prefix: str) -> list[str]:
    pages = bucket_client(env).get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


def start_mlflow(port: int, database: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    """The tracking server as cluster/node.sh starts it on a head: PostgreSQL backend, artifacts in S3."""
    with log.open("a") as out:
        return subprocess.Popen(
            [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
             "--backend-store-uri", f"postgresql://reslab@{database}/mlflow",
             "--artifacts-destination", f"s3://{BUCKET}/mlflow"],
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def test_results_live_in_postgres_and_s3_survive_a_server_restart_and_are_rebuilt_from_the_bucket(
    postgres: str, s3: dict[str, str], cifar_subset: Path, tmp_path: Path
) -> None:
    """Also: the node has no CIFAR-10; its trials copy it from the bucket (--data-source), once."""
    from mlflow import MlflowClient

    from reslab.tracking import check_reachable

    env = study_env(**s3, PGPASSWORD=PASSWORD)
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    log = tmp_path / "mlflow-server.log"
    server = start_mlflow(port, postgres, env, log)
    try:
        try:
            wait_for(lambda: answers(check_reachable, uri), 120, "the MLflow server")
        except AssertionError as timed_out:
            raise AssertionError(f"{timed_out}: {log.read_text()[-3000:]}") from None
        settings = {"model": "cifar_resnet20", "iterations": 60, "eval_every": 6, "batch_size": 16}
        script = write_study(tmp_path, "outlive", "grid(lr=[0.1, 0.05])", settings)
        storage = f"s3://{BUCKET}/studies"
        for batch in cifar_subset.iterdir():
            bucket_client(s3).upload_file(str(batch), BUCKET, f"data/cifar10/{batch.name}")
        node_copy = tmp_path / "node" / "cifar10"
        data = ["--data-dir", str(node_copy), "--data-source", f"s3://{BUCKET}/data/cifar10"]
        study = subprocess.Popen(
            [sys.executable, str(script), "--storage", storage, "--tracking-uri", uri, *data],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
        )  # fmt: skip

        def first_report_logged() -> bool:
            client = MlflowClient(uri)
            found = client.get_experiment_by_name("outlive-smoke")
            return (
                any("test_error" in r.data.metrics for r in client.search_runs([found.experiment_id]))
                if found
                else False
            )

        wait_for(first_report_logged, 300, "the first report to reach the server")
        stop_group(server)  # the tracking server restarts mid-study (an upgrade, a crash)
        time.sleep(3)
        server = start_mlflow(port, postgres, env, log)
        stdout, stderr = study.communicate(timeout=600)
        assert study.returncode == 0, (stdout + stderr)[-4000:]
        assert f"storage: {storage}/outlive-smoke" in stdout
        assert sorted(p.name for p in node_copy.iterdir()) == sorted(p.name for p in cifar_subset.iterdir())
        assert [p.name for p in node_copy.parent.iterdir() if p.name != ".cifar10.lock"] == ["cifar10"]
        every_step = list(range(6, 61, 6))
        _, children = tracked_runs(uri, "outlive-smoke")
        assert children == {"lr=0.1-seed0": every_step, "lr=0.05-seed0": every_step}, stdout[-3000:]  # none lost
        studies = bucket_keys(s3, "studies/outlive-smoke/")
        assert "studies/outlive-smoke/summary.md" in studies and any("/checkpoint_" in k for k in studies)
        models_before = [k for k in bucket_keys(s3, "mlflow/") if k.endswith("model.pt2")]
        assert models_before, "the registered nets' files are not in the bucket"
        assert not list(tmp_path.glob("runs")), "the study wrote a local store or storage"

        # the head is gone: its MLflow database with it. The bucket rebuilds the runs.
        stop_group(server)
        assert sql(int(postgres.split(":")[1]), "DROP DATABASE mlflow", "postgres")
        assert sql(int(postgres.split(":")[1]), "CREATE DATABASE mlflow", "postgres")
        server = start_mlflow(port, postgres, env, log)
        wait_for(lambda: answers(check_reachable, uri), 120, "the MLflow server on an empty database")
        assert MlflowClient(uri).get_experiment_by_name("outlive-smoke") is None
        reslab = str(BIN / "reslab")
        synced = subprocess.run(
            [reslab, "tracking", "sync", f"{storage}/outlive-smoke", "--tracking-uri", uri],
            capture_output=True, text=True, env=env, timeout=600,
        )  # fmt: skip
        assert synced.returncode == 0, synced.stderr[-3000:]
        assert "2 trials checked: 2 runs created" in synced.stdout
        parents, children = tracked_runs(uri, "outlive-smoke")
        assert children == {"lr=0.1-seed0": every_step, "lr=0.05-seed0": every_step}
        assert parents and parents[0].data.tags["profile"] == "smoke"  # the launch's provenance came back
        [name] = [line.split("models:/")[1].split("/")[0] for line in synced.stdout.splitlines() if "models:/" in line]

        pulled = subprocess.run(
            [reslab, "models", "pull", f"models:/{name}@best", "--out", str(tmp_path / "pulled"),
             "--tracking-uri", uri],
            capture_output=True, text=True, env=env, timeout=300,
        )  # fmt: skip
        assert pulled.returncode == 0, pulled.stderr[-3000:]
        weights = next((tmp_path / "pulled").rglob("model.pt2"))
        in_bucket = [k for k in bucket_keys(s3, "mlflow/") if k.endswith("model.pt2")]
        assert len(in_bucket) > len(models_before)  # the sync logged the nets again, into the bucket
        bodies = {bucket_client(s3).get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in in_bucket}
        assert weights.read_bytes() in bodies  # the pulled net's weights are a file of the bucket

        import torch

        from reslab import load_model as load

        net = load(tmp_path / "pulled" / "model")
        assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    finally:
        stop_group(server)
