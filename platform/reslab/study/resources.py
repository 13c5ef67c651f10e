"""What a trial asks Ray for: a GPU share sized to its net where the cluster has (or can add) GPUs, else a
CPU; a data-parallel trial's coordinating function asks only for memory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..models import get_model_info
from ..training import TrainConfig
from .trial import trial_config

COORDINATOR_MEMORY = 256 * 2**20  # bytes reserved for a data-parallel trial's coordinating function


def gpu_fraction(config: TrainConfig) -> float:
    """The share of one GPU a trial needs, so that small CIFAR nets pack several to a GPU."""
    info = get_model_info(config.model)
    depth = config.depth or info.depth or 0
    if info.family == "imagenet" or depth > 110:
        return 1.0
    return 0.5 if depth > 56 else 0.25


def trial_resources(config: TrainConfig, cluster_gpus: float, gpus_per_trial: float | None) -> dict[str, float]:
    """Ray resources for one trial: a GPU share where the cluster has GPUs, else one CPU. A data-parallel
    trial's function only coordinates (its Ray Train workers ask for a CPU or GPU each), so it asks for
    no CPU, only memory (Ray needs a non-empty request)."""
    if config.data_parallel > 1:
        return {"memory": COORDINATOR_MEMORY}
    gpus = gpus_per_trial if gpus_per_trial is not None else (gpu_fraction(config) if cluster_gpus else 0.0)
    return {"CPU": 1.0, "GPU": gpus} if gpus else {"CPU": 1.0}


def resources_fn(cluster_gpus: float, gpus_per_trial: float | None) -> Callable[[dict], Any]:
    from ray.tune import PlacementGroupFactory

    def resources(params: dict) -> PlacementGroupFactory:
        config = trial_config(params)
        return PlacementGroupFactory([trial_resources(config, cluster_gpus, gpus_per_trial)])

    return resources
