"""Data-parallel trials: one Tune trial that trains over several workers (GPUs) with Ray Train.

The Tune trial function starts a `TorchTrainer` whose workers each run `build_trainer` on their share
of every batch, DDP averaging the gradients (NCCL on GPUs, gloo on CPUs). Rank 0 writes checkpoints;
its reports reach Tune through `TuneReportCallback`. The Train run is named after the Tune trial,
so a retried trial finds the run's checkpoints and continues from the latest.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch

from ..data.fetch import fetch_dataset
from ..distributed import Shard
from ..training import TrainingDiverged, build_trainer
from ..training.cuda import check_gpu_usable

TRIAL_CHECKPOINT = "checkpoint.pt"


def replica_spread(model: torch.nn.Module, shard: Shard) -> float:
    """Max minus min over the workers of the sum of all parameters: 0 when DDP kept them identical."""
    import torch.distributed as dist

    total = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum()
    high, low = total.clone(), total.clone()
    if shard.size > 1:
        dist.all_reduce(high, op=dist.ReduceOp.MAX)
        dist.all_reduce(low, op=dist.ReduceOp.MIN)
    return (high - low).item()


def worker_loop(loop_config: dict[str, Any]) -> None:
    """One Ray Train worker: its share of the trial, resumed from the run's latest checkpoint."""
    import ray.train
    import ray.train.torch

    from .runner import DETERMINISTIC_ERRORS, diverged_metrics, failed_metrics, trial_config

    params = loop_config["params"]
    config = trial_config(params)
    try:
        fallback = check_gpu_usable(ray.get_gpu_ids(), params["trial"].get("allow_cpu_fallback", False))
        if source := params["trial"].get("data_source"):
            fetch_dataset(source, config.data_dir)  # one copy per node: the other workers there wait for it
        trainer = build_trainer(config, device=torch.device(fallback) if fallback else ray.train.torch.get_device())
    except DETERMINISTIC_ERRORS as error:  # every worker meets it: the trial ends once, as failed, with the reason
        ray.train.report({**failed_metrics(error), **loop_config["extra"]})
        return
    resumed_from = 0
    if (checkpoint := ray.train.get_checkpoint()) is not None:
        with checkpoint.as_directory() as folder:
            trainer.resume(Path(folder) / TRIAL_CHECKPOINT)
        resumed_from = trainer.iteration

    def report(result) -> None:
        metrics = {
            **result.as_dict(),
            **loop_config["extra"],
            "resumed_from": resumed_from,
            "diverged": False,
            "world_size": trainer.shard.size,
            "replica_spread": replica_spread(trainer.model, trainer.shard),
        }
        with tempfile.TemporaryDirectory() as folder:
            saved = None
            if trainer.shard.is_chief:
                trainer.save(Path(folder) / TRIAL_CHECKPOINT, config=config.to_dict())
                saved = ray.train.Checkpoint.from_directory(folder)
            ray.train.report(metrics, checkpoint=saved)

    try:
        trainer.run(report)
    except TrainingDiverged as error:
        # the loss is summed over the group, so every worker diverges at the same iteration and reports it
        ray.train.report({**diverged_metrics(trainer.iteration, error), **loop_config["extra"]})


def train_data_parallel(params: dict[str, Any], extra: dict[str, Any], storage: str, max_failures: int) -> None:
    """Run the trial's config on `data_parallel` Ray Train workers from inside a Tune trial."""
    from ray import tune
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    from .runner import trial_config

    config = trial_config(params)
    use_gpu = bool(params["trial"].get("gpus_per_worker"))
    trainer = TorchTrainer(
        worker_loop,
        train_loop_config={"params": params, "extra": extra},
        scaling_config=ScalingConfig(num_workers=config.data_parallel, use_gpu=use_gpu),
        run_config=RunConfig(
            name=f"data_parallel-{tune.get_context().get_trial_id()}",
            storage_path=storage,
            failure_config=FailureConfig(max_failures=max_failures),
            callbacks=[TuneReportCallback()],
        ),
    )
    trainer.fit()
