"""One trial's training, the same loop for every trial: in the Ray Tune trial itself, or on each of the Ray
Train workers of a data-parallel trial (the same loop with a `Shard` and DDP).

What the loop does: check the node (a GPU torch can use, the data folder, copied from --data-source when
missing), resume from the latest checkpoint, report every evaluation with a checkpoint, measure Fig. 7's
layer responses at the end when the study asks, re-report the final result when restored from the final
checkpoint (a driver that died after it never recorded the end), and end a diverged or unstartable trial
once with the reason. Where the reports go is a `Session`: Tune's or Ray Train's. `train_trial` is the
Ray Tune trainable of every study.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..data import DatasetNotFoundError
from ..data.archive import default_cap
from ..data.fetch import fetch_dataset
from ..distributed import Shard
from ..store.layout import WORKER_GROUP_FILE
from ..store.storage import read_text, write_text
from ..tracking.trials import TrialParams
from ..training import TrainingDiverged, build_trainer
from ..training.checkpoint import TRIAL_CHECKPOINT, CheckpointError
from ..training.cuda import CudaUnavailable, check_gpu_usable
from ..training.responses import layer_responses

# Errors that the same config meets again on every attempt (missing data, an invalid config or model, a GPU
# torch cannot use): the trial ends at once as failed with the reason; retrying is only for a lost worker or node.
DETERMINISTIC_ERRORS = (DatasetNotFoundError, ValueError, CudaUnavailable)
MAX_FAILURES = 3  # retries of a trial from its last checkpoint after a worker or node is lost


@dataclass(frozen=True)
class Session:
    """Where a trial's loop reports: `report(metrics, checkpoint_folder_or_None)`, `checkpoints()` the ones
    to resume from, newest first (none at the start), and whether this worker writes checkpoints."""

    report: Callable[[dict[str, Any], str | None], None]
    checkpoints: Callable[[], list[Any]]  # Ray `Checkpoint`s: `.path`, `.as_directory()`
    writes_checkpoints: bool = True


def diverged_metrics(iteration: int, error: TrainingDiverged) -> dict[str, Any]:
    """The last report of a diverged trial. NaN errors: no number pretends the net was evaluated, and
    ASHA / Optuna treat the trial as failed."""
    nan = math.nan
    reason = str(error)
    errors = {"train_error": nan, "test_error": nan, "validation_error": nan}
    return {"iteration": iteration, **errors, "diverged": True, "diverged_reason": reason}


def failed_metrics(error: Exception) -> dict[str, Any]:
    """The one report of a trial that cannot start (missing data, invalid config): it ends as failed with
    the reason, instead of raising into Tune, which would retry it for nothing."""
    nan = math.nan
    reason = f"{type(error).__name__}: {error}".splitlines()[0][:500]
    errors = {"train_error": nan, "test_error": nan, "validation_error": nan}
    return {"iteration": 0, **errors, "failed": True, "failed_reason": reason}


def replica_spread(model: torch.nn.Module, shard: Shard) -> float:
    """Max minus min over the workers of the sum of all parameters: 0 when DDP kept them identical."""
    import torch.distributed as dist

    total = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum()
    high, low = total.clone(), total.clone()
    if shard.size > 1:
        dist.all_reduce(high, op=dist.ReduceOp.MAX)
        dist.all_reduce(low, op=dist.ReduceOp.MIN)
    return (high - low).item()


def run_trial(
    params: dict[str, Any],
    session: Session,
    extra: dict[str, Any],
    gpu_ids: list[Any],
    device: torch.device | None = None,
) -> None:
    """Train the trial's config to its end, reporting to `session`; `extra` goes into every report (where it
    ran). `gpu_ids` are the GPUs Ray gave this process; `device` is Ray Train's choice for a worker."""
    trial = TrialParams.read(params)
    config = trial.train_config
    try:
        if fallback := check_gpu_usable(gpu_ids, trial.allow_cpu_fallback):
            device = torch.device(fallback)
        if source := trial.data_source:
            cap = trial.data_max_bytes or default_cap(config.dataset)
            fetch_dataset(source, config.data_dir, cap)  # one copy per node: other trials there wait for it
        trainer = build_trainer(config, device)
    except DETERMINISTIC_ERRORS as error:  # every attempt would meet it: end once, as failed, with the reason
        session.report({**failed_metrics(error), **extra}, None)
        return
    resumed_from, skipped = resume(trainer, session.checkpoints())
    extra = {**extra, "resumed_from": resumed_from, "device": str(trainer.device)}
    extra["train_images"] = trainer.data.train_images  # the evidence a verdict weighs: the whole set, or a part
    if skipped:
        extra["checkpoint_skipped"] = skipped
    if trainer.shard.size > 1:
        extra["world_size"] = trainer.shard.size

    def report(result) -> None:
        metrics = {**result.as_dict(), **extra, "diverged": False}
        if trainer.shard.size > 1:
            metrics["replica_spread"] = replica_spread(trainer.model, trainer.shard)  # collective: every worker
        if trial.layer_responses and result.iteration == config.recipe.iterations:
            metrics["layer_responses"] = layer_responses(trainer.model, trainer.data.test_batches())
        with tempfile.TemporaryDirectory() as checkpoint:
            if session.writes_checkpoints:
                trainer.save(Path(checkpoint) / TRIAL_CHECKPOINT, config=config.to_dict())
            session.report(metrics, checkpoint if session.writes_checkpoints else None)

    try:
        trainer.run(report)
        if resumed_from == config.recipe.iterations and trainer.history:
            # restored from the final checkpoint of a trial whose end the driver did not record
            final = {**trainer.history[-1].as_dict(), **extra, "diverged": False}
            if trial.layer_responses:
                final["layer_responses"] = layer_responses(trainer.model, trainer.data.test_batches())
            session.report(final, None)
    except TrainingDiverged as error:
        # with data parallelism the loss is summed over the group: every worker diverges at the same iteration
        session.report({**diverged_metrics(trainer.iteration, error), **extra}, None)


def resume(trainer: Any, checkpoints: list[Any]) -> tuple[int, str]:
    """Resume `trainer` from the newest readable checkpoint: a corrupt latest one (a torn write, a bad disk)
    costs the iterations since the one before it (Tune keeps two), not the trial. Returns the iteration
    resumed from and what was skipped ("" when nothing was)."""
    skipped = []
    for checkpoint in checkpoints:
        with checkpoint.as_directory() as folder:
            try:
                trainer.resume(Path(folder) / TRIAL_CHECKPOINT)
            except CheckpointError as error:
                skipped.append(f"{Path(checkpoint.path).name} unreadable ({str(error).split('; ')[0]})")
                continue
        return trainer.iteration, "; ".join(skipped)[:500]
    return 0, ("started over: " + "; ".join(skipped))[:500] if skipped else ""


def earlier_checkpoints(latest: Any) -> list[Any]:
    """The checkpoints beside `latest` in its trial (or Ray Train run) folder, newest first: Tune's and Ray
    Train's checkpoint folder names (checkpoint_000012, checkpoint_<timestamp>) sort in the order written."""
    import pyarrow.fs
    from ray.train import Checkpoint

    parent, name = latest.path.rstrip("/").rsplit("/", 1)
    found = latest.filesystem.get_file_info(pyarrow.fs.FileSelector(parent))
    names = [f.base_name for f in found if f.type == pyarrow.fs.FileType.Directory]
    earlier = sorted((n for n in names if n.startswith("checkpoint_") and n < name), reverse=True)
    return [Checkpoint(f"{parent}/{n}", filesystem=latest.filesystem) for n in earlier]


def _session(module: Any, writes_checkpoints: bool = True) -> Session:
    """The session of Ray Tune (`ray.tune`) or Ray Train (`ray.train`): both report and restore the same way."""

    def checkpoints() -> list[Any]:
        latest = module.get_checkpoint()
        return [] if latest is None else [latest, *earlier_checkpoints(latest)]

    def report(metrics: dict[str, Any], folder: str | None) -> None:
        module.report(metrics, checkpoint=module.Checkpoint.from_directory(folder) if folder else None)

    return Session(report=report, checkpoints=checkpoints, writes_checkpoints=writes_checkpoints)


def train_trial(params: dict[str, Any]) -> None:
    """The Ray Tune trainable of every study: train one config here, or on `data_parallel` Ray Train workers."""
    import ray
    from ray import tune

    context = ray.get_runtime_context()
    extra = {
        "node_id": context.get_node_id(),
        "node_ip": ray.util.get_node_ip_address(),
        "pid": os.getpid(),
        "gpu_ids": ",".join(map(str, ray.get_gpu_ids())),
    }
    if TrialParams.read(params).train_config.data_parallel > 1:
        _train_data_parallel(params, extra)
    else:
        run_trial(params, _session(tune), extra, ray.get_gpu_ids())


def _worker_loop(loop_config: dict[str, Any]) -> None:
    """One Ray Train worker of a data-parallel trial: the same loop on its share of every batch."""
    import ray
    import ray.train
    import ray.train.torch

    chief = ray.train.get_context().get_world_rank() == 0  # rank 0 writes the checkpoints
    if chief:  # so that a retry of the trial can free this worker group's reservation (_free_lost_workers)
        group = ray.util.get_current_placement_group()
        write_text(loop_config["run_folder"], WORKER_GROUP_FILE, group.id.hex() if group else "")
    session = _session(ray.train, writes_checkpoints=chief)
    run_trial(loop_config["params"], session, loop_config["extra"], ray.get_gpu_ids(), ray.train.torch.get_device())


def _train_data_parallel(params: dict[str, Any], extra: dict[str, Any]) -> None:
    """Start a `TorchTrainer` from inside the Tune trial: its workers run `run_trial` with DDP (NCCL on GPUs,
    gloo on CPUs), and rank 0's reports reach Tune through `TuneReportCallback`. The Train run is named
    after the Tune trial, so a retried trial finds the run's checkpoints and continues from the latest."""
    from ray import tune
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    trial = TrialParams.read(params)
    name = f"data_parallel-{tune.get_context().get_trial_id()}"
    run_folder = f"{trial.storage}/{name}"
    _free_lost_workers(run_folder)
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config={"params": params, "extra": extra, "run_folder": run_folder},
        scaling_config=ScalingConfig(num_workers=trial.train_config.data_parallel, use_gpu=bool(trial.gpus_per_worker)),
        run_config=RunConfig(
            name=name,
            storage_path=trial.storage,
            failure_config=FailureConfig(max_failures=MAX_FAILURES),
            callbacks=[TuneReportCallback()],
        ),
    )
    trainer.fit()


def _free_lost_workers(run_folder: str) -> None:
    """Free the resources of the worker group a lost attempt of this trial left reserved.

    When a data-parallel trial's process dies, its Ray Train workers die with it but their placement group
    stays reserved as long as the driver lives: Ray Train's cleaner finds the dead controller through the
    State API, which an embedded Ray started without a dashboard does not serve. The retry would wait for
    those CPUs or GPUs forever; rank 0 recorded the group's id, so the retry removes it first."""
    import ray
    from ray.util.placement_group import PlacementGroup, placement_group_table, remove_placement_group

    recorded = read_text(run_folder, WORKER_GROUP_FILE)
    if not recorded:
        return
    group = PlacementGroup(ray.PlacementGroupID.from_hex(recorded.strip()))
    if placement_group_table(group).get("state") not in (None, "REMOVED"):
        remove_placement_group(group)
