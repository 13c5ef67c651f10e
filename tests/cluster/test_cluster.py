"""cluster/gpu.yaml and cluster/onprem.yaml against Ray's own cluster-launcher validation (what `ray up` runs
first), and what they share: cluster/node.sh's commands and what rsync copies to the nodes."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from conftest import REPO

CONFIG = REPO / "cluster" / "gpu.yaml"
CONFIGS = [REPO / "cluster" / "gpu.yaml", REPO / "cluster" / "onprem.yaml"]


def load(path=CONFIG) -> dict:
    return yaml.safe_load(path.read_text())


def test_gpu_yaml_passes_ray_cluster_config_validation() -> None:
    config = prepare_config(copy.deepcopy(load()))
    validate_config(config)
    assert config["head_node_type"] == "head"
    assert config["available_node_types"]["head"]["resources"] == {"CPU": 0}  # trials go to GPU workers
    assert config["available_node_types"]["gpu_worker"]["max_workers"] <= config["max_workers"]


def test_the_validation_is_real_a_broken_config_fails_it() -> None:
    broken = load()
    broken["max_wrokers"] = 8
    with pytest.raises(jsonschema.ValidationError, match="max_wrokers"):
        validate_config(prepare_config(broken))
    broken = load()
    broken["head_node_type"] = "gpu_head"
    with pytest.raises(ValueError, match="head_node_type"):
        validate_config(prepare_config(broken))


def test_onprem_yaml_passes_ray_cluster_config_validation() -> None:
    config = prepare_config(copy.deepcopy(load(REPO / "cluster" / "onprem.yaml")))
    validate_config(config)
    assert config["provider"]["type"] == "local" and config["provider"]["worker_ips"]


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_both_configs_run_the_shared_node_script(path) -> None:
    """One source of truth: setup, MLflow and Ray's start are cluster/node.sh in both configs, so the test
    that runs onprem.yaml through `ray up` proves gpu.yaml's commands too."""
    config = load(path)
    assert config["setup_commands"][0].startswith("bash ~/reslab/cluster/node.sh setup --storage ")
    assert config["head_setup_commands"][0].startswith("bash ~/reslab/cluster/node.sh start-mlflow ")
    assert config["head_start_ray_commands"] == ["bash ~/reslab/cluster/node.sh start-head"]
    assert config["worker_start_ray_commands"] == ["bash ~/reslab/cluster/node.sh start-worker"]
    assert set(config["file_mounts"].values()) == {"."}


def test_node_script_is_valid_bash_and_refuses_unknown_commands(tmp_path) -> None:
    script = REPO / "cluster" / "node.sh"
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    done = subprocess.run(["bash", str(script), "launch"], capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "usage: node.sh" in done.stderr


@pytest.mark.skipif(shutil.which("rsync") is None, reason="rsync is not installed (.ci/run installs it)")
@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_the_nodes_get_the_whole_package_and_not_the_local_state(path, tmp_path) -> None:
    """rsync as `ray up` runs it with the config's excludes: an unanchored `data` once dropped reslab/data/."""
    config = load(path)
    excludes = [arg for pattern in config["rsync_exclude"] for arg in ("--exclude", pattern)]
    filters = [arg for name in config["rsync_filter"] for arg in ("--filter", f"dir-merge,- {name}")]
    copy_ = subprocess.run(
        ["rsync", "-a", *excludes, *filters, f"{REPO}/", f"{tmp_path}/"], capture_output=True, text=True, check=False
    )
    assert copy_.returncode == 0, copy_.stderr
    for needed in ("platform/reslab/data/cifar10.py", "platform/reslab/launch/run.py", "cluster/node.sh",
                   "constraints.txt", "studies/shortcut_ablation.py"):  # fmt: skip
        assert (tmp_path / needed).is_file(), needed
    assert not (tmp_path / ".venv").exists() and not (tmp_path / "runs").exists()


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_key_is_commented(path) -> None:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if re.match(r"^\s*(- )?[A-Za-z_~/.]+:", line):
            assert "#" in line, f"{path.name}:{number} has no comment: {line.strip()}"


def test_node_script_puts_the_database_password_from_ssm_into_pgpass(s3, tmp_path) -> None:
    """gpu.yaml's MLflow database password comes from AWS SSM Parameter Store (moto's server: it serves SSM too) into
    ~/.pgpass with mode 600, escaped as libpq reads it; it is in no URI, YAML or command line."""
    import os
    import sys
    from pathlib import Path

    import boto3

    secret = r"pa:ss\word"
    ssm = boto3.client("ssm", endpoint_url=s3["AWS_ENDPOINT_URL"], region_name=s3["AWS_DEFAULT_REGION"],
                       aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    ssm.put_parameter(Name="/reslab/mlflow-db-password", Value=secret, Type="SecureString")
    home = tmp_path / "home"
    home.mkdir()
    (home / "venv").symlink_to(Path(sys.executable).parent.parent)  # the node's venv: this environment
    env = {**os.environ, **s3, "HOME": str(home)}
    done = subprocess.run(
        ["bash", str(REPO / "cluster" / "node.sh"), "db-password", "/reslab/mlflow-db-password"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    pgpass = home / ".pgpass"
    assert pgpass.read_text() == "*:*:*:*:pa\\:ss\\\\word\n"
    assert pgpass.stat().st_mode & 0o777 == 0o600
    for config in CONFIGS:
        assert secret not in config.read_text() and "PGPASSWORD" not in config.read_text()


def test_gpu_yaml_keeps_results_where_ray_down_does_not_delete_them() -> None:
    """MLflow's runs in PostgreSQL (password from SSM), its artifacts and Ray Tune's storage in S3; no node
    copies ImageNet at setup (a study copies its data with --data-source)."""
    config = load()
    [mlflow] = config["head_setup_commands"]
    assert "--backend-store-uri postgresql://" in mlflow and "--password-ssm " in mlflow
    assert "--artifacts-destination s3://" in mlflow and "sqlite" not in mlflow
    assert "--storage s3://" in config["setup_commands"][0]
    assert config["worker_setup_commands"] == []
    assert "ray submit --tmux" in CONFIG.read_text() and "--data-source" in CONFIG.read_text()
