"""What a trial asks Ray for: a GPU share sized to its net where the cluster has (or can add) GPUs, else a
CPU; a data-parallel trial's coordinating function asks only for memory. And whether the cluster can ever
give it: Ray Tune leaves a trial that asks for more than any node has PENDING for ever, without a word."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..study.plan import input_size
from ..study.spec import Trial
from ..tracking.trials import TrialParams
from ..training import TrainConfig
from .preflight import bootstrap_config

COORDINATOR_MEMORY = 256 * 2**20  # bytes reserved for a data-parallel trial's coordinating function


# multiply-adds of one training step (forward, per image, x batch) up to which a trial takes a quarter or a half
# of a GPU: ResNet-56 at batch 128 (16 G) packs four to a GPU, ResNet-110 (32 G) two, ResNet-1202 and every
# ImageNet net (over 300 G) take a whole one. A batch's activations grow with its multiply-adds, so its
# memory follows the same steps.
SHARE_STEPS = ((20e9, 0.25), (40e9, 0.5))


def gpu_fraction(config: TrainConfig) -> float:
    """The share of one GPU a trial needs, from what one of its steps computes, so that small nets pack
    several to a GPU and a wide one does not."""
    step = config.model_spec.multiply_adds(input_size(config)) * config.recipe.batch_size
    return next((share for most, share in SHARE_STEPS if step <= most), 1.0)


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
        config = TrialParams.read(params).train_config
        return PlacementGroupFactory([trial_resources(config, cluster_gpus, gpus_per_trial)])

    return resources


def node_capacities() -> list[dict[str, float]]:
    """The resources of every node a trial could run on: the live ones, and each node the autoscaler may add
    (its node types from the cluster config `ray up` left on the head, times their max_workers)."""
    import ray

    nodes = [dict(n["Resources"]) for n in ray.nodes() if n["Alive"]]
    config = bootstrap_config()
    for name, node in (config.get("available_node_types") or {}).items():
        if name != config.get("head_node_type"):
            nodes += [dict(node.get("resources") or {})] * int(node.get("max_workers") or 0)
    return nodes


def unschedulable(trials: list[Trial], cluster_gpus: float, gpus_per_trial: float | None, where: str) -> str | None:
    """Why a trial of the study can never start on this cluster (`where` describes it), or None when every
    one can. A trial's one bundle must fit on one node; a data-parallel trial's workers (a whole CPU, or GPU,
    each) may spread over nodes."""
    nodes = node_capacities()
    for trial in trials:
        config = trial.config
        if config.data_parallel > 1:
            kind = "GPU" if cluster_gpus else "CPU"
            have = int(sum(n.get(kind, 0) // 1 for n in nodes))
            if config.data_parallel > have:
                return (
                    f"trial {trial.label}-seed{trial.seed} asks for {config.data_parallel} data-parallel workers, one "
                    f"{kind} each, but the cluster has {have} {kind}s in all ({where}, autoscaling included): pass "
                    f"--data-parallel {max(have, 1)} or fewer, or run it on a larger cluster"
                )
            continue
        request = trial_resources(config, cluster_gpus, gpus_per_trial)
        if not any(all(n.get(key, 0) >= amount for key, amount in request.items()) for n in nodes):
            asked = ", ".join(f"{amount:g} {key}" for key, amount in request.items())
            most = max((n.get("GPU", 0) for n in nodes), default=0)
            fix = (
                "drop --gpus-per-trial (trials train on CPUs where the cluster has no GPU)"
                if not most
                else f"pass --gpus-per-trial {most:g} or less"
            )
            return (
                f"trial {trial.label}-seed{trial.seed} asks for {asked}, which no node has or the autoscaler can "
                f"add ({where}): {fix}"
            )
    return None
