"""Autoscaling of GPU workers, for real, on Ray's fake multi-node provider: a head with no GPU, a worker
type with a (fake) GPU and min_workers 0. A study whose trials ask for GPU shares makes the autoscaler add
worker nodes, its trials run there (on the CPU, as the GPUs are fake), and idle workers are removed.

The head runs under `setsid` in a folder of the test's own and is ended by its process group; the fake
workers are its children. `ray stop` is never run (it would stop every Ray on the machine).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from conftest import stop_group
from helpers import free_port, results, wait_for, write_study

pytestmark = pytest.mark.slow

RAY = str(Path(sys.executable).with_name("ray"))


def autoscaling_config(port: int) -> dict:
    """A complete config: `ray start --autoscaling-config` fills in no defaults the way `ray up` does."""
    return {
        "cluster_name": "reslab-autoscaling-test",
        "max_workers": 2,
        "upscaling_speed": 1.0,
        "idle_timeout_minutes": 0.2,
        "provider": {
            "type": "fake_multinode",
            "use_node_id_as_ip": True,
            "disable_node_updaters": True,
            "disable_launch_config_check": True,
            "gcs_address": f"127.0.0.1:{port}",  # else fake workers look for the head on port 6379
        },
        "available_node_types": {
            # the name fake_multinode gives the head that `ray start --head` starts: under another name the
            # autoscaler sees no head of the configured type and keeps launching and removing one
            "ray.head.default": {"resources": {"CPU": 1}, "node_config": {}, "max_workers": 0},
            "gpu_worker": {"resources": {"CPU": 1, "GPU": 1}, "node_config": {}, "min_workers": 0, "max_workers": 2},
        },
        "head_node_type": "ray.head.default",
        "auth": {},
        "docker": {},
        **{key: [] for key in ("initialization_commands", "setup_commands", "head_setup_commands")},
        **{key: [] for key in ("worker_setup_commands", "head_start_ray_commands", "worker_start_ray_commands")},
        "file_mounts": {},
        "cluster_synced_files": [],
        "file_mounts_sync_continuously": False,
        "rsync_exclude": [],
        "rsync_filter": [],
    }


def nodes(address: str, env: dict[str, str]) -> list[dict]:
    probe = (
        "import json, ray; ray.init(); "
        "print('NODES', json.dumps([{'id': n['NodeID'], 'gpus': n['Resources'].get('GPU', 0)} "
        "for n in ray.nodes() if n['Alive']]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, env={**env, "RAY_ADDRESS": address}
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("NODES ")]  # not the autoscaler's events
    return json.loads(lines[-1].removeprefix("NODES ")) if done.returncode == 0 and lines else []


def autoscaler_log(temp: Path, lines: int = 60) -> str:
    """The end of the autoscaler's log, which says why a node was (not) removed."""
    logs = sorted(temp.glob("session_*/logs/monitor.log"))
    return "\n".join(logs[-1].read_text(errors="replace").splitlines()[-lines:]) if logs else "(no monitor.log)"


def test_autoscaling_adds_gpu_workers_for_a_study_and_removes_them_when_idle(tmp_path: Path) -> None:
    port = free_port()
    address = f"127.0.0.1:{port}"
    temp = Path(tempfile.mkdtemp(prefix="rsa", dir="/tmp"))  # short: Ray's socket paths live under it
    config = autoscaling_config(port)
    home = tmp_path / "home"  # the driver's home holds the config where `ray up` puts it on a head
    home.mkdir()
    (home / "ray_bootstrap_config.yaml").write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_AUTH_MODE="disabled", RAY_TMPDIR=str(temp), PYTHONUNBUFFERED="1")
    head_env = {**env, "RAY_FAKE_CLUSTER": "1", "AUTOSCALER_UPDATE_INTERVAL_S": "1"}
    head = subprocess.Popen(
        [RAY, "start", "--head", "--block", "--port", str(port), "--num-cpus", "1", "--include-dashboard", "false",
         f"--autoscaling-config={home / 'ray_bootstrap_config.yaml'}", "--temp-dir", str(temp),
         "--disable-usage-stats"],
        env=head_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        wait_for(lambda: len(nodes(address, env)) == 1, 120, "the head node")
        head_id = nodes(address, env)[0]["id"]
        settings = {"model": "cifar_resnet20", "iterations": 24, "eval_every": 12, "batch_size": 32}
        script = write_study(tmp_path, "autoscaled", "grid(lr=[0.1, 0.05, 0.02, 0.01])", settings)
        done = subprocess.run(
            [sys.executable, str(script), "--storage", str(tmp_path), "--shared-storage", "--allow-cpu-fallback"],
            capture_output=True, text=True, timeout=900, cwd=tmp_path,
            env={**env, "RAY_ADDRESS": address, "HOME": str(home)},
        )  # fmt: skip
        assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
        # it saw that the autoscaler can add 2 GPUs, so its trials asked for GPU shares although none was up
        assert f"4 trials on the cluster at {address}" in done.stdout
        assert "(+2 GPUs the autoscaler can add)" in done.stdout
        trials = results(tmp_path / "autoscaled-smoke")
        assert len(trials) == 4
        ran_on = {lines[-1]["node_id"] for lines in trials.values()}
        assert head_id not in ran_on and 1 <= len(ran_on) <= 2  # only on nodes the autoscaler added
        for lines in trials.values():  # each held a GPU share of a fake GPU and trained on the CPU
            assert lines[-1]["gpu_ids"] == "0" and lines[-1]["device"] == "cpu" and lines[-1]["iteration"] == 24
        # idle workers go after idle_timeout_minutes (12 s): only the head is left
        started = time.monotonic()
        try:
            wait_for(lambda: [n["id"] for n in nodes(address, env)] == [head_id], 180, "idle workers to be removed")
        except AssertionError as timed_out:
            raise AssertionError(f"{timed_out}; the autoscaler's log ends:\n{autoscaler_log(temp)}") from None
        print(f"idle workers removed {time.monotonic() - started:.0f} s after the study ended")
    finally:
        stop_group(head)
        time.sleep(2)
        leftover = subprocess.run(["pgrep", "-f", str(temp)], capture_output=True, text=True).stdout.split()
        for pid in leftover:  # fake workers that outlived their head: ours by their temp folder
            os.kill(int(pid), signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)
    assert not leftover, "fake worker raylets outlived the head"
