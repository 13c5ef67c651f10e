"""cluster/gpu.yaml against Ray's own cluster-launcher validation (what `ray up` runs first)."""

from __future__ import annotations

import copy
import re

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

from conftest import REPO

CONFIG = REPO / "cluster" / "gpu.yaml"


def load() -> dict:
    return yaml.safe_load(CONFIG.read_text())


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


def test_setup_installs_the_project_with_the_pinned_set_and_head_runs_mlflow() -> None:
    config = load()
    assert any("pip install" in c and "constraints.txt" in c and "-e ~/reslab" in c for c in config["setup_commands"])
    assert any("mlflow server" in c for c in config["head_setup_commands"])
    assert any("$RAY_HEAD_IP:5000" in c for c in config["worker_start_ray_commands"])
    assert config["file_mounts"] == {"/home/ubuntu/reslab": "."}


def test_every_key_is_commented() -> None:
    for number, line in enumerate(CONFIG.read_text().splitlines(), start=1):
        if re.match(r"^\s*(- )?[A-Za-z_]+:", line):
            assert "#" in line, f"gpu.yaml:{number} has no comment: {line.strip()}"
