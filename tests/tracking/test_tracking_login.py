"""The head's MLflow server as cluster/node.sh starts it: on 127.0.0.1, with MLflow's basic-auth app and the
admin's password kept on the head (mode 600), never in the YAML. A real server: drivers on the head log in
through ~/.mlflow/credentials; a client without the login gets one message before anything starts."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO
from helpers import free_port

NODE = REPO / "cluster" / "node.sh"


def reslab(home: Path, *args: str, **login: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING_")}
    env.update(HOME=str(home), **login)
    script = Path(sys.executable).with_name("reslab")
    return subprocess.run([str(script), *args], capture_output=True, text=True, env=env, timeout=120, check=False)


@pytest.mark.slow
def test_the_heads_mlflow_server_asks_for_the_login_that_the_head_keeps(tmp_path: Path) -> None:
    home = tmp_path / "head"
    home.mkdir()
    (home / "venv").symlink_to(Path(sys.executable).parent.parent)  # the node's venv: this environment
    port = free_port()
    env = {**os.environ, "HOME": str(home), "RESLAB_MLFLOW_PORT": str(port)}
    env.pop("RESLAB_MLFLOW_ADMIN_PASSWORD", None)
    start = [
        "bash", str(NODE), "start-mlflow", "--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
        "--artifacts-destination", str(tmp_path / "artifacts"),
    ]  # fmt: skip
    try:
        started = subprocess.run(start, capture_output=True, text=True, env=env, timeout=300, check=False)
        assert started.returncode == 0, started.stderr + (home / "reslab-mlflow" / "server.log").read_text()
        server = f"http://127.0.0.1:{port}"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{server}/api/2.0/mlflow/experiments/search?max_results=1", timeout=10)
        assert refused.value.code == 401  # nothing without the login

        password_file = home / "reslab-mlflow" / "admin-password"
        password = password_file.read_text().strip()
        assert len(password) >= 24 and password_file.stat().st_mode & 0o777 == 0o600
        credentials = home / ".mlflow" / "credentials"
        assert credentials.stat().st_mode & 0o777 == 0o600 and password in credentials.read_text()

        on_the_head = reslab(home, "models", "list", "--tracking-uri", server)  # ~/.mlflow/credentials
        assert on_the_head.returncode == 0 and "no registered models" in on_the_head.stdout, on_the_head.stderr
        elsewhere = reslab(tmp_path, "models", "list", "--tracking-uri", server)
        assert elsewhere.returncode == 2 and "asks for a login and this process has none (HTTP 401)" in elsewhere.stderr
        assert "MLFLOW_TRACKING_USERNAME" in elsewhere.stderr and "Traceback" not in elsewhere.stderr
        wrong = reslab(tmp_path, "models", "list", "--tracking-uri", server,
                       MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD="guess")  # fmt: skip
        assert wrong.returncode == 2 and "the login of admin was refused" in wrong.stderr
        given = reslab(tmp_path, "models", "list", "--tracking-uri", server,
                       MLFLOW_TRACKING_USERNAME="admin", MLFLOW_TRACKING_PASSWORD=password)  # fmt: skip
        assert given.returncode == 0, given.stderr
    finally:
        subprocess.run(["bash", str(NODE), "stop-mlflow"], env=env, timeout=60, check=False)
