"""The user's cluster path run for real: `ray up` / `ray submit` / `ray down` on cluster/onprem.yaml, with
this machine as the head, reached over ssh on 127.0.0.1 as a throwaway user.

The node is an unprivileged user made by the test, so the setup's edits of ~/.bashrc and ~/venv never touch
a real home, and the `ray stop` its start commands run can only stop that user's Ray. Its setup links the
test's environment (RESLAB_NODE_REUSE_ENV) instead of installing for minutes; every command is the one a
lab's machines run. sshd, Ray and the MLflow server are stopped by PID, and the user removed, afterwards.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from conftest import REPO
from helpers import free_port

pytestmark = pytest.mark.slow

SSHD = Path("/usr/sbin/sshd")
TINY_STUDY = """
import sys
from reslab.launch import main
from reslab.study import Study

SETTINGS = {"model": "cifar_resnet20", "iterations": 6}
STUDY = Study("tiny", "one short trial", "cifar10", [{"lr": 0.1}], settings=SETTINGS)
sys.exit(main(STUDY))
"""
RAY = str(Path(sys.executable).with_name("ray"))


def sh(*args: str, **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=False, **kwargs)


def user_pids(user: str) -> list[int]:
    found = sh("pgrep", "-u", user)
    return [int(p) for p in found.stdout.split()]


def user_commands(user: str) -> str:
    return sh("ps", "-u", user, "-o", "pid=,args=").stdout


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(1)


def open_path_to(folder: Path) -> list[tuple[Path, int]]:
    """Let other users pass through (not list) the folders above `folder` where they may not (a checkout
    under /root, say), so the node user can reach the test's environment; returns the modes to restore."""
    opened = []
    for parent in [folder, *folder.parents]:
        mode = parent.stat().st_mode & 0o7777
        if not mode & 0o001:
            opened.append((parent, mode))
            parent.chmod(mode | 0o001)
    return opened


@contextlib.contextmanager
def node_user(base: Path, ray_port: int, mlflow_port: int, dashboard_port: int):
    """A throwaway login on this machine, with the test key authorized and the node's environment."""
    if os.geteuid() != 0:
        pytest.skip("making a throwaway node user needs root (CI runs as root)")
    user = f"rsn{secrets.token_hex(3)}"
    home = base / "h"
    made = sh("useradd", "-m", "-d", str(home), "-s", "/bin/bash", user)
    assert made.returncode == 0, made.stderr
    opened: list[tuple[Path, int]] = []
    try:
        sh("usermod", "-p", "*", user)  # unlocked for key login (useradd makes a locked account)
        key = base / "key"
        sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key))
        (home / ".ssh").mkdir(mode=0o700)
        shutil.copy(key.with_suffix(".pub"), home / ".ssh" / "authorized_keys")
        (home / "t").mkdir()  # the node's TMPDIR: Ray's /tmp/ray belongs to root here
        site = sysconfig.get_path("purelib")  # the test's environment, linked by node.sh setup
        environment = (
            f"export TMPDIR={home / 't'}\nexport RESLAB_RAY_PORT={ray_port}\n"
            f"export RESLAB_MLFLOW_PORT={mlflow_port}\nexport RESLAB_NODE_REUSE_ENV={site}\n"
            f"export RESLAB_DASHBOARD_PORT={dashboard_port}\nexport RESLAB_DASHBOARD_AGENT_PORT={free_port()}\n"
        )
        skeleton = Path("/etc/skel/.bashrc")
        (home / ".bashrc").write_text(environment + (skeleton.read_text() if skeleton.is_file() else ""))
        sh("chown", "-R", f"{user}:{user}", str(home))
        opened = open_path_to(Path(site))
        readable = sh("su", user, "-c", f"test -r {site}/ray/__init__.py")
        assert readable.returncode == 0, f"the node user cannot read the test's environment at {site}"
        yield user, home, key
    finally:
        for folder, mode in opened:  # the folders' modes as they were
            folder.chmod(mode)
        for pid in user_pids(user):  # whatever the test did not stop by now: this user's processes only
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(AssertionError):
            wait_for(lambda: not user_pids(user), 30, "the node user's processes to end")
        removed = sh("userdel", user)
        assert removed.returncode == 0, removed.stderr


@contextlib.contextmanager
def loopback_sshd(base: Path, user: str):
    """sshd on 127.0.0.1:22 (Ray's ssh runner has no port setting), for the node user only."""
    if not SSHD.is_file():
        pytest.skip("sshd is not installed (Debian's openssh-server; .ci/run installs it)")
    if shutil.which("rsync") is None:
        pytest.skip("rsync is not installed (`ray up` copies the checkout with it; .ci/run installs it)")
    host_key = base / "host_key"
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key))
    config = base / "sshd_config"
    config.write_text(
        f"ListenAddress 127.0.0.1\nPort 22\nHostKey {host_key}\nPidFile {base / 'sshd.pid'}\n"
        f"AllowUsers {user}\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PubkeyAuthentication yes\nAuthorizedKeysFile .ssh/authorized_keys\nMaxStartups 100\nMaxSessions 100\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)
    started = sh(str(SSHD), "-f", str(config), "-E", str(base / "sshd.log"))
    assert started.returncode == 0, started.stderr
    pid_file = base / "sshd.pid"
    # sshd creates the file before it writes the number: wait for the number, not the file
    wait_for(lambda: pid_file.is_file() and pid_file.read_text().strip().isdigit(), 10, "sshd's pid")
    pid = int(pid_file.read_text())
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def cluster_config(base: Path, user: str, key: Path) -> Path:
    """cluster/onprem.yaml with the lab's values (REPLACE) set to this machine and the test's node user."""
    config = yaml.safe_load((REPO / "cluster" / "onprem.yaml").read_text())
    config["cluster_name"] = f"reslab-test-{user}"
    config["provider"].update(head_ip="127.0.0.1", worker_ips=[])
    config["auth"] = {"ssh_user": user, "ssh_private_key": str(key)}
    path = base / "cluster.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_ray_up_ray_submit_ray_down_run_a_study_on_the_onprem_cluster(
    cifar_subset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    base = Path(tempfile.mkdtemp(prefix="rs", dir="/tmp"))  # short: Ray's socket paths live under it
    base.chmod(0o755)
    ray_port, mlflow_port, dashboard_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
    env["TMPDIR"] = str(base)  # `ray up`'s config cache lands here
    name = None
    try:
        with node_user(base, ray_port, mlflow_port, dashboard_port) as (user, home, key), loopback_sshd(base, user):
            data = home / "cifar10"  # the data folder, on the node
            shutil.copytree(cifar_subset, data)
            sh("chown", "-R", f"{user}:{user}", str(data))
            config = cluster_config(base, user, key)
            name = yaml.safe_load(config.read_text())["cluster_name"]
            started = time.monotonic()
            up = sh(RAY, "up", "-y", str(config), cwd=REPO, env=env, timeout=600)
            up_seconds = time.monotonic() - started
            assert up.returncode == 0, (up.stdout + up.stderr)[-4000:]
            # --tmux, as the README says: the study goes on when this ssh session ends
            submitted = sh(
                RAY, "submit", "--tmux", str(config), "studies/shortcut_ablation.py", "--",
                "--dataset", "cifar10", "--profile", "smoke", "--data-dir", str(data),
                cwd=REPO, env=env, timeout=300,
            )  # fmt: skip
            assert submitted.returncode == 0, (submitted.stdout + submitted.stderr)[-4000:]
            # the summary is in the storage the config names (RESLAB_STORAGE, set by node.sh setup)
            summary = home / "reslab-results" / "shortcut_ablation_cifar10-smoke" / "summary.csv"
            wait_for(summary.is_file, 900, "the study in tmux to write its summary")
            submit_seconds = time.monotonic() - started - up_seconds
            pane = sh(RAY, "exec", str(config), "tmux capture-pane -p -J -S -", cwd=REPO, env=env, timeout=120)
            console = pane.stdout
            assert "4 trials on the cluster at 127.0.0.1" in console, console[-4000:]  # it joined the cluster
            assert f"tracking: http://127.0.0.1:{mlflow_port}" in console
            assert "cifar_resnet20-B         seed 0  finished" in console  # reslab's console, not Tune's table
            assert "Configuration for experiment" not in console and "'per_worker'" not in console

            # the runs and the registry are in the head's MLflow server, which asks for its login (drivers on the
            # head have it in ~/.mlflow/credentials; here it is read from the head's file, as an admin would)
            server = f"http://127.0.0.1:{mlflow_port}"
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(f"{server}/api/2.0/mlflow/experiments/search?max_results=1", timeout=10)
            assert refused.value.code == 401
            password = (home / "reslab-mlflow" / "admin-password").read_text().strip()
            assert (home / "reslab-mlflow" / "admin-password").stat().st_mode & 0o777 == 0o600
            assert password in (home / ".mlflow" / "credentials").read_text()
            monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
            monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
            client = MlflowClient(server)
            experiment = client.get_experiment_by_name("shortcut_ablation_cifar10-smoke")
            assert experiment is not None
            runs = client.search_runs([experiment.experiment_id])
            children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
            assert len(children) == 4 and {r.info.status for r in children} == {"FINISHED"}
            models = {m.name: m for m in client.search_registered_models()}
            assert set(models) == {
                "cifar10-cifar_plain20", "cifar10-cifar_resnet20-A", "cifar10-cifar_resnet20-B",
                "cifar10-cifar_resnet20-C",
            }  # fmt: skip
            assert all("best" in m.aliases for m in models.values())
            assert len(summary.read_text().splitlines()) == 5
            sh(RAY, "exec", str(config), "tmux kill-server", cwd=REPO, env=env, timeout=120)

            # `ray job submit` runs the driver inside Ray, not in a login shell: it gets the same settings
            tiny = home / "tiny_study.py"
            tiny.write_text(TINY_STUDY)
            job = sh(
                RAY, "exec", str(config),
                f"ray job submit --address http://127.0.0.1:{dashboard_port} -- python {tiny}",
                cwd=REPO, env=env, timeout=600,
            )  # fmt: skip
            assert job.returncode == 0 and "succeeded" in job.stdout, (job.stdout + job.stderr)[-4000:]
            assert f"tracking: http://127.0.0.1:{mlflow_port}" in job.stdout
            tiny_experiment = client.get_experiment_by_name("tiny-smoke")
            assert tiny_experiment is not None, "the job's study did not reach the head's MLflow server"
            [tiny_run] = [
                r for r in client.search_runs([tiny_experiment.experiment_id]) if "ray.trial_id" in r.data.tags
            ]
            assert tiny_run.info.status == "FINISHED"
            assert (home / "reslab-results" / "tiny-smoke" / "summary.csv").is_file()

            started = time.monotonic()
            down = sh(RAY, "down", "-y", str(config), cwd=REPO, env=env, timeout=300)
            down_seconds = time.monotonic() - started
            assert down.returncode == 0, (down.stdout + down.stderr)[-4000:]

            def ray_gone() -> bool:
                return not any(p in user_commands(user) for p in ("raylet", "gcs_server", "ray::", "monitor.py"))

            wait_for(ray_gone, 60, f"Ray of {user} to stop after ray down:\n{user_commands(user)}")
            assert "mlflow" in user_commands(user)  # ray down leaves the tracking server serving the results
            pid = int((home / "reslab-mlflow" / "server.pid").read_text())
            os.killpg(pid, signal.SIGTERM)  # node.sh started it in its own session: this ends the server
            wait_for(lambda: not user_pids(user), 60, f"nothing left running as {user}:\n{user_commands(user)}")
            print(f"ray up {up_seconds:.0f} s, ray submit {submit_seconds:.0f} s, ray down {down_seconds:.0f} s")
    finally:
        if name:
            for leftover in (f"/tmp/cluster-{name}.state", f"/tmp/cluster-{name}.lock"):
                Path(leftover).unlink(missing_ok=True)  # the local provider's state files
            control = hashlib.sha256(name.encode()).hexdigest()[:10]  # ray up's ssh control sockets
            for folder in Path("/tmp").glob(f"ray_ssh_*/{control}"):
                shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)
