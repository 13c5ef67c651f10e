"""`--dry-run`: the trial table with each trial's compute and an estimated time, without running.

Training compute is multiply-adds per image x 3 (forward + backward) x images seen; evaluation compute is
multiply-adds x images evaluated (forward only: every evaluation passes the whole test set, centre crop, and
the validation set where one is held out; 10-crop testing adds one pass of 10 crops an image at the end).
Time comes from a short measured throughput of each distinct model on this device (an evaluated image taken
as a third of a trained one), so it is an estimate for this machine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from ..data import TensorData, synthetic_splits
from ..models import get_model_info
from ..training import TrainConfig, Trainer, pick_device
from ..training.recipe import Recipe
from .spec import PROFILES, SMALL_MARGIN, Study, Trial, variant_label

PROBE_STEPS = 2  # timed steps of the throughput probe (after one untimed)
PROBE_BATCH = {32: 32, 224: 4}  # probe batch by image size: near the real batch, yet a probe of seconds
TEST_IMAGES = {"cifar10": 10_000, "imagenet": 50_000, "synthetic": 500}  # the full test (val) sets
TRAIN_IMAGES = {"cifar10": 50_000, "imagenet": 1_281_167, "synthetic": 2_000}  # what a validation split cuts


@dataclass(frozen=True)
class PlannedTrial:
    label: str
    seed: int
    iterations: int
    batch_size: int
    flops: float  # training: multiply-adds x 3 x images over the whole trial
    seconds: float  # estimated on this device, evaluation included
    eval_flops: float = 0.0  # evaluation: multiply-adds x images evaluated over the whole trial


def input_size(config: TrainConfig) -> tuple[int, int, int]:
    """The image size a trial trains on: its family's, except synthetic data, which is CIFAR-sized."""
    return (3, 32, 32) if config.dataset == "synthetic" else get_model_info(config.model).input_size


def measure_images_per_second(config: TrainConfig, device: torch.device) -> float:
    """Training images/s of this config's model on `device`, from a few steps on synthetic images."""
    size = input_size(config)
    batch_size = min(config.recipe.batch_size, PROBE_BATCH.get(size[-1], 4))
    images = synthetic_splits(num_train=batch_size, num_test=1, image_size=size[-1])
    data = TensorData(images, batch_size, seed=0, device=device)
    recipe = Recipe(batch_size=batch_size, iterations=1, milestones=())
    trainer = Trainer(config.model_spec.build(), data, recipe, device=device, precision=config.precision)
    trainer.train_step(*data.train_batch(0))  # untimed: allocations, kernel selection
    started = time.perf_counter()
    for step in range(PROBE_STEPS):
        trainer.train_step(*data.train_batch(step))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return PROBE_STEPS * batch_size / (time.perf_counter() - started)


def trial_compute(config: TrainConfig) -> float:
    """Multiply-adds x 3 (forward + backward) x images over the whole trial: what it costs to train."""
    macs = config.model_spec.multiply_adds(input_size(config))
    return 3.0 * macs * config.recipe.iterations * config.recipe.batch_size


def evaluations(config: TrainConfig) -> int:
    """How many times a trial evaluates: every `eval_every` iterations and at the end (as `Trainer.run`)."""
    iterations = config.recipe.iterations
    every = config.eval_every or max(1, iterations // 10)
    return iterations // every + (1 if iterations % every else 0)


def eval_images(config: TrainConfig) -> float:
    """Images put through the net to evaluate over a whole trial: the test set and the validation split at
    every evaluation, and 10 crops of each test image once at the end with 10-crop testing."""
    test = TEST_IMAGES[config.dataset]
    validation = round(TRAIN_IMAGES[config.dataset] * config.validation_fraction) if config.validation_fraction else 0
    final = 10 * test if config.ten_crop and config.dataset == "imagenet" else 0
    if config.multiscale and config.dataset == "imagenet":  # the whole image at each scale, in 224x224 units
        from ..data.imagenet import MULTISCALE_SIDES  # torchvision: only where an ImageNet plan needs it

        final += test * sum((side / 224) ** 2 * 4 / 3 for side in MULTISCALE_SIDES)  # 4:3, ImageNet's usual shape
    return evaluations(config) * (test + validation) + final


def plan(trials: list[Trial], device: str | None = None) -> list[PlannedTrial]:
    """Compute and time estimates for every trial (one throughput probe per distinct model)."""
    target = pick_device(device)
    speeds: dict[tuple, float] = {}
    planned = []
    for trial in trials:
        config = trial.config
        key = (config.model, config.depth, config.shortcut, input_size(config))
        if key not in speeds:
            speeds[key] = measure_images_per_second(config, target)
        images = config.recipe.iterations * config.recipe.batch_size
        evaluated = eval_images(config)
        macs = config.model_spec.multiply_adds(input_size(config))
        planned.append(
            PlannedTrial(
                trial.label,
                trial.seed,
                config.recipe.iterations,
                config.recipe.batch_size,
                trial_compute(config),
                (images + evaluated / 3) / speeds[key],  # a forward pass: about a third of a training step
                macs * evaluated,
            )
        )
    return planned


def format_plan(planned: list[PlannedTrial], concurrency: int, device: str) -> str:
    """The trial table and totals, with the time divided over `concurrency` parallel trials."""
    header = f"{'variant':<28} {'seed':>4} {'iterations':>10} {'batch':>5} {'PFLOP':>9} {'eval PFLOP':>10}"
    lines = [f"{header} {'est. time':>10}"]
    for p in planned:
        lines.append(
            f"{p.label:<28} {p.seed:>4} {p.iterations:>10} {p.batch_size:>5} {p.flops / 1e15:>9.4f} "
            f"{p.eval_flops / 1e15:>10.4f} {_duration(p.seconds):>10}"
        )
    train_flops = sum(p.flops for p in planned)
    eval_flops = sum(p.eval_flops for p in planned)
    total_seconds = sum(p.seconds for p in planned)
    share = 100 * eval_flops / (train_flops + eval_flops) if train_flops + eval_flops else 0.0
    lines.append(
        f"{len(planned)} trials, {train_flops / 1e15:.4f} PFLOP training (multiply-adds x 3) + "
        f"{eval_flops / 1e15:.4f} PFLOP evaluation ({share:.0f} % of the compute); about "
        f"{_duration(total_seconds / max(1, concurrency))} on {device} with {concurrency} trial(s) at a time "
        f"({_duration(total_seconds)} of trial time)"
    )
    return "\n".join(lines)


def seeds_note(study: Study, profile: str) -> str:
    """What the dry run says about the seeds a profile adds where a claimed margin is small ("" if none)."""
    if not PROFILES[profile].margin_seeds or not (needed := study.seeds_needed()):
        return ""
    parts = [f"{label} ({len(study.seeds_of(v, PROFILES[profile]))} seeds; margin {needed[label][1]:.2f})"
             for v in study.variants if (label := variant_label(v)) in needed]  # fmt: skip
    return f"seeds: the paper decides these claims by under {SMALL_MARGIN} points, so they run more seeds: " + (
        ", ".join(parts)
    )


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
