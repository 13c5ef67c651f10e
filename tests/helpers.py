"""What the tests share: free ports, waiting, a study script written and run as a subprocess, a real
`mlflow server`, the dashboard served and run by Streamlit's AppTest."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def answers(check, uri: str) -> bool:
    try:
        check(uri, timeout=2)
    except ConnectionError:
        return False
    return True


STUDY_TEMPLATE = """
import sys
from reslab.launch import main
from reslab.study import Study, grid

STUDY = Study("{name}", "a test study", "cifar10", {variants}, settings={settings}{options})
if __name__ == "__main__":
    sys.exit(main(STUDY))
"""


def write_study(folder: Path, name: str, variants: str, settings: dict, **options: object) -> Path:
    """A study script; `options` are more Study fields (e.g. layer_responses=True)."""
    path = folder / f"{name}.py"
    extra = "".join(f", {key}={value!r}" for key, value in options.items())
    path.write_text(STUDY_TEMPLATE.format(name=name, variants=variants, settings=settings, options=extra))
    return path


def study_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def run(script: Path, *args: str, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run a study script in its --storage folder, so its default MLflow store (runs/mlflow.db) lands there too."""
    cwd = args[args.index("--storage") + 1] if "--storage" in args else None
    return subprocess.run(
        [sys.executable, str(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or study_env(),
        cwd=cwd,
        check=False,
    )


def results(experiment: Path) -> dict[str, list[dict]]:
    """Every trial's reported results (Tune's result.json), by trial folder name."""
    found = {}
    for path in sorted(experiment.glob("*/result.json")):
        found[path.parent.name] = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return found


def summary(experiment: Path) -> pd.DataFrame:
    return pd.read_csv(experiment / "summary.csv").set_index("variant")


def tracked_runs(uri: str, experiment: str) -> tuple[list, dict[str, list[int]]]:
    """The experiment's launch (parent) runs, and each trial run's logged test_error steps by run name."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    parents = [r for r in runs if r.data.tags.get("reslab.launch") == "true"]
    children = {
        r.info.run_name: [
            m.step for m in sorted(client.get_metric_history(r.info.run_id, "test_error"), key=lambda m: m.step)
        ]
        for r in runs
        if "ray.trial_id" in r.data.tags
    }
    return parents, children


def start_mlflow_server(folder: Path, port: int) -> subprocess.Popen:
    """A real `mlflow server` on 127.0.0.1 with its store in `folder`, in its own process group."""
    return subprocess.Popen(
        [
            str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{folder / 'server.db'}",
            "--artifacts-destination",
            str(folder / "artifacts"),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop(server: subprocess.Popen) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=30)


APP = REPO / "platform" / "reslab" / "dashboard" / "app.py"


CHROMIUM = Path("/usr/bin/chromium")


def app_test(uri: str, monkeypatch: pytest.MonkeyPatch):
    """The app run by AppTest on `uri`; the variable stays set for the test, so reruns read the same store."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("RESLAB_TRACKING_URI", uri)
    return AppTest.from_file(str(APP), default_timeout=120).run()


@contextlib.contextmanager
def serve(store: str) -> Iterator[str]:
    """`reslab dashboard` serving `store` on 127.0.0.1: its URL once it answers."""
    import signal
    import time
    import urllib.request

    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("reslab")), "dashboard", "--tracking-uri", store, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the dashboard did not answer within 120 s"
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
