"""`--dry-run`: the trial table with each trial's compute and an estimated time, without running.

Training compute is multiply-adds per image x 3 (forward + backward) x images seen; evaluation compute is
multiply-adds x images evaluated (forward only: every evaluation passes the whole test set, centre crop, and
the validation set where one is held out; 10-crop testing adds one pass of 10 crops an image at the end).
Time is given on named GPUs (`study/cost.py`) without training anything; `--measure` adds a time on this
device from a short probe of each distinct workload (an evaluated image taken as a third of a trained one).
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, replace

import torch

from ..data import TensorData, synthetic_splits
from ..models import get_model_info
from ..results.stats import FAMILYWISE, POWER
from ..results.verdicts import FULL_TRAIN_IMAGES
from ..training import TrainConfig, Trainer, pick_device
from ..training.recipe import Recipe
from .cost import GPUS, UTILISATION, gpu_seconds
from .spec import PROFILES, Study, Trial, variant_label

PROBE_STEPS = 5  # timed steps of the throughput probe (after one untimed); their median counts
PROBE_BATCH = {32: 32, 224: 4}  # probe batch by image size: near the real batch, yet a probe of seconds
TEST_IMAGES = {"cifar10": 10_000, "imagenet": 50_000, "synthetic": 500}  # the full test (val) sets
TRAIN_IMAGES = {**FULL_TRAIN_IMAGES, "synthetic": 2_000}  # what a validation split cuts


@dataclass(frozen=True)
class PlannedTrial:
    label: str
    seed: int
    iterations: int
    batch_size: int
    net: tuple[str, str | None]  # the net's label (with depth) and shortcut
    family: str  # "cifar" or "imagenet"
    multiply_adds: float  # per image, forward
    evaluated: float  # images put through the net to evaluate, over the whole trial
    seconds: float = math.nan  # measured on this device (`--measure`), evaluation included

    @property
    def images(self) -> int:
        return self.iterations * self.batch_size

    @property
    def flops(self) -> float:
        """Training: multiply-adds x 3 (forward + backward) x images over the whole trial."""
        return 3.0 * self.multiply_adds * self.images

    @property
    def eval_flops(self) -> float:
        """Evaluation: multiply-adds x images evaluated over the whole trial."""
        return self.multiply_adds * self.evaluated

    def gpu_seconds(self, gpu: str) -> tuple[float, bool]:
        """Its time on one `gpu` (`study/cost.py`), and whether that rate was measured."""
        return gpu_seconds(gpu, self.net, self.family, self.batch_size, self.multiply_adds, self.images,
                           self.evaluated)  # fmt: skip


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
    times = []
    for step in range(PROBE_STEPS):
        started = time.perf_counter()
        trainer.train_step(*data.train_batch(step))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - started)
    return batch_size / statistics.median(times)  # the median step: one slow step (a busy core) does not count


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


def plan(trials: list[Trial], device: str | None = None, measure: bool = False) -> list[PlannedTrial]:
    """Compute for every trial, and its GPU time from `study/cost.py`, without training anything; with
    `measure`, also a time on this device from a short probe of each distinct workload."""
    target = pick_device(device) if measure else None
    speeds: dict[tuple, float] = {}
    planned = []
    if trials and target is not None:  # untimed: the process's first steps pay one-time costs once
        measure_images_per_second(trials[0].config, target)
    for trial in trials:
        config = trial.config
        macs = config.model_spec.multiply_adds(input_size(config))
        trial_plan = PlannedTrial(
            trial.label, trial.seed, config.recipe.iterations, config.recipe.batch_size,
            (config.model_spec.label, config.shortcut), get_model_info(config.model).family, macs, eval_images(config),
        )  # fmt: skip
        if target is not None:
            # one probe per distinct amount of work (multiply-adds to two significant digits): plain-20 and
            # ResNet-20 with options A, B or C get one estimate, not four noisy ones
            key = (float(f"{macs:.2g}"), input_size(config), config.precision)
            if key not in speeds:
                speeds[key] = measure_images_per_second(config, target)
            trial_plan = replace(trial_plan, seconds=(trial_plan.images + trial_plan.evaluated / 3) / speeds[key])
        planned.append(trial_plan)
    return planned


def format_plan(
    planned: list[PlannedTrial], concurrency: int = 1, device: str = "", price_per_gpu_hour: float | None = None
) -> str:
    """The trial table (with each trial's time on an H100) and totals: compute, GPU-hours on each named GPU
    (measured rates where there are some), dollars at `price_per_gpu_hour`, and with a measured plan the
    time on `device` over `concurrency` parallel trials."""
    measured = any(not math.isnan(p.seconds) for p in planned)
    header = f"{'variant':<28} {'seed':>4} {'iterations':>10} {'batch':>5} {'PFLOP':>9} {'eval PFLOP':>10} {'H100':>8}"
    lines = [header + (f" {'here':>10}" if measured else "")]
    for p in planned:
        lines.append(
            f"{p.label:<28} {p.seed:>4} {p.iterations:>10} {p.batch_size:>5} {p.flops / 1e15:>9.4f} "
            f"{p.eval_flops / 1e15:>10.4f} {_duration(p.gpu_seconds('H100')[0]):>8}"
            + (f" {_duration(p.seconds):>10}" if measured else "")
        )
    train_flops = sum(p.flops for p in planned)
    eval_flops = sum(p.eval_flops for p in planned)
    share = 100 * eval_flops / (train_flops + eval_flops) if train_flops + eval_flops else 0.0
    lines.append(
        f"{len(planned)} trials, {train_flops / 1e15:.4f} PFLOP training (multiply-adds x 3) + "
        f"{eval_flops / 1e15:.4f} PFLOP evaluation ({share:.0f} % of the compute)"
    )
    lines.append("GPU-hours (one trial per GPU at a time): " + gpu_hours_line(planned, price_per_gpu_hour))
    if measured:
        total_seconds = sum(p.seconds for p in planned)
        lines.append(
            f"on {device}: about {_duration(total_seconds / max(1, concurrency))} with {concurrency} trial(s) at a "
            f"time ({_duration(total_seconds)} of trial time)"
        )
    return "\n".join(lines)


def gpu_hours_line(planned: list[PlannedTrial], price_per_gpu_hour: float | None = None) -> str:
    """GPU-hours of the trials on each named GPU, how many of them at a measured rate, and their price."""
    parts = []
    for gpu in GPUS:
        times = [p.gpu_seconds(gpu) for p in planned]
        hours = sum(t for t, _ in times) / 3600
        known = sum(m for _, m in times)
        price = f", ${hours * price_per_gpu_hour:,.0f}" if price_per_gpu_hour is not None else ""
        parts.append(f"{gpu} {hours:,.1f}" + (f" ({known} of {len(times)} trials measured{price})" if known else
                                               (f" ({price[2:]})" if price else "")))  # fmt: skip
    assumed = ", ".join(f"{family} nets at {100 * share:.1f} %" for family, share in UTILISATION.items())
    return "; ".join(parts) + f" — peak dense bf16 x utilisation ({assumed}) where not measured (docs/benchmarks.md)"


def planned_trials(study: Study, profile: str, data_dir: str | None = None) -> list[Trial]:
    """The trials a run will train: the grid, or for a search its base trial once per sample on `profile`
    (ASHA may stop some early: the plan is their most)."""
    trials = study.trials(profile, data_dir)
    if study.search is None:
        return trials
    samples = study.search.samples.get(profile, 1)
    return [replace(trials[0], label=f"{trials[0].label} sample {k + 1}") for k in range(samples)]


AUGMENTATION = {
    "cifar10": "pad 4 (black) + random 32x32 crop + flip",
    "synthetic": "pad 4 (black) + random 32x32 crop + flip",
    "imagenet": "shorter side in [256, 480] + random 224x224 crop + flip + PCA lighting",
}
NORMALISATION = {"pixel_mean": "per-pixel mean subtracted", "channel": "per-channel mean and std"}


def recipe_lines(study: Study, profile: str, data_dir: str | None = None) -> str:
    """Each variant's recipe as it will train: lr, weight decay, momentum, schedule, warm-up, augmentation,
    normalisation and evaluation, once per variant (its seeds share it; a search names its ranges)."""
    configs = {trial.label: trial.config for trial in study.trials(profile, data_dir)}
    space = study.search.space if study.search is not None else {}

    def value(name: str, recipe: Recipe) -> str:
        if name in space:
            low, high = space[name]
            return f"searched in [{low:g}, {high:g}] (log-uniform)"
        return f"{getattr(recipe, name):g}"

    lines = ["recipes:"]
    for label, config in configs.items():
        r = config.recipe
        warmup = (
            f"lr {r.warmup_lr:g} until training error < {100 * r.warmup_until_error:.0f} %" if r.warmup_lr else "none"
        )
        evaluation = f"every {config.eval_every or max(1, r.iterations // 10)} iterations, centre view"
        if config.ten_crop:
            evaluation += "; 10-crop at the end"
        if config.multiscale:
            evaluation += "; multi-scale at the end"
        if config.validation_fraction:
            evaluation += f"; {100 * config.validation_fraction:.0f} % of the training set held out to validate"
        milestones = ", ".join(map(str, r.milestones)) or "none"
        lines.append(
            f"  {label}: lr {value('lr', r)}, weight decay {value('weight_decay', r)} (every weight), momentum "
            f"{value('momentum', r)}, batch {r.batch_size}, {r.iterations} iterations, lr x{r.lr_decay:g} at "
            f"{milestones}; warm-up {warmup if r.warmup_lr else 'none'}; augmentation {AUGMENTATION[config.dataset]}; "
            f"{NORMALISATION.get(config.normalization, config.normalization)}; evaluation {evaluation}"
        )
    return "\n".join(lines)


def seeds_note(study: Study, profile: str) -> str:
    """Per variant, the seeds a profile that sizes by power runs and the claim that asked for them ("" when
    the profile keeps the declared seeds or no claim sizes any)."""
    chosen = PROFILES[profile]
    if not chosen.power_seeds or not (needs := study.seeds_needed(chosen.power_seeds)):
        return ""
    lines = [
        f"seeds sized for {100 * POWER:.0f} % power at a familywise {100 * FAMILYWISE:.0f} % over "
        f"{len(study.claims)} claims (at most {chosen.power_seeds} per variant):"
    ]
    for variant in study.variants:
        if (need := needs.get(label := variant_label(variant))) is None:
            continue
        seeds = len(study.seeds_of(variant, chosen))
        capped = f", capped: {100 * need.power:.0f} % power" if need.capped else ""
        lines.append(
            f"  {label}: {seeds} seeds for {need.claim} (margin {need.margin:.2f}, sigma {need.sigma:.2f}: "
            f"{need.sigma_source}{capped})"
        )
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
