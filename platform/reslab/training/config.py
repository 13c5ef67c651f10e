"""One training run as a frozen config, and the one function that turns it into a `Trainer`.

A run is a pure function of its config (and its checkpoint, when resuming): the config is what the
CLI writes next to a run, what a study varies, and what a Ray trial receives.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch

from ..data import NORMALIZATIONS, TensorData, TrainingData, load_cifar10, synthetic_splits
from ..distributed import Shard
from ..models import ModelSpec, get_model_info
from ..models.cifar import blocks_per_stage
from ..models.shortcuts import SHORTCUT_OPTIONS
from .loop import PRECISIONS, Trainer, pick_device
from .recipe import Recipe, cifar_recipe, imagenet_recipe

MAX_SEED = 2**32 - 1  # numpy's seeds are 32-bit unsigned integers (torch's are wider)
# The model families each dataset can feed; synthetic images fit any net (global pooling takes any size).
DATASETS: dict[str, tuple[str, ...]] = {
    "cifar10": ("cifar",),
    "imagenet": ("imagenet",),
    "synthetic": ("cifar", "imagenet"),
}


# How a run runs, not what it trains: the same study on another machine (another data folder, GPU, precision
# setting or number of DDP workers) trains the same nets. Kept out of a study's grid fingerprint and of the
# MLflow params that compare runs (the run records them in a tag instead).
DEVICE_PATTERN = re.compile(r"cpu|cuda(:\d+)?")  # what reslab trains on; torch knows more, none tested
RUNTIME_FIELDS = ("data_dir", "download", "device", "precision", "workers", "data_parallel", "cuda_graph")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines one training run: what is trained, and how it runs (RUNTIME_FIELDS)."""

    model: str  # registered model name, e.g. "cifar_resnet56" (see `reslab models`)
    recipe: Recipe = field(default_factory=cifar_recipe)  # optimisation schedule
    dataset: str = "cifar10"  # "cifar10", "imagenet" or "synthetic"
    data_dir: str | None = None  # dataset location (unused for "synthetic")
    # option "A", "B" or "C" of a residual net; None only for a plain net. Left out for a residual net it is
    # the paper's default for the family (A on CIFAR, B on ImageNet), spelled out when the config is made
    shortcut: str | None = None
    depth: int | None = None  # only for the any-depth builders cifar_resnet / cifar_plain
    seed: int = 0  # seeds model initialisation and the order/augmentation of batches
    eval_every: int | None = None  # iterations between reports; None = ten reports per run
    validation_fraction: float | None = None  # hold out this part of the training set as a validation set
    validation_seed: int = 0  # the hold-out's seed: one split for every trial of a study, whatever its seed
    normalization: str = "pixel_mean"  # "pixel_mean" (the paper) or "channel"
    download: bool = False  # fetch CIFAR-10 when it is missing from data_dir
    device: str | None = None  # "cpu", "cuda", "cuda:1"...; None = CUDA when available
    precision: str = "auto"  # "fp32", "bf16", or "auto" (bf16 where the hardware has it natively)
    workers: int = 4  # DataLoader processes decoding ImageNet images
    ten_crop: bool = False  # ImageNet: also test on 10 crops at the end (the paper's tables); curves stay centre-crop
    multiscale: bool = False  # ImageNet: also the fully-convolutional multi-scale test at the end (Table 4)
    data_parallel: int = 1  # workers (GPUs) training this run together with DDP; batch_size is their total
    cuda_graph: bool = True  # on CUDA, replay each step's forward and backward as one captured graph (faster)

    def __post_init__(self) -> None:
        """Spell out the family's default shortcut, so that the config (its params, its fingerprint) says which
        option trains and None means one thing: a plain net; and the normalisation an ImageNet run really uses."""
        with contextlib.suppress(ValueError):  # an unknown model: problems() names it
            info = get_model_info(self.model)
            if self.shortcut is None:
                object.__setattr__(self, "shortcut", info.shortcut_for(None))
        if self.dataset == "imagenet":  # its pipeline normalises per channel (docs/FIDELITY.md): the record says so
            object.__setattr__(self, "normalization", "channel")

    def problems(self) -> list[str]:
        """Every invalid field with what it must be, checked before anything is built."""
        found = []
        try:
            info = get_model_info(self.model)
        except ValueError as error:
            return [f"model: {error}"]
        if self.dataset not in DATASETS:
            found.append(f"dataset: unknown dataset {self.dataset!r}; valid: {', '.join(DATASETS)}")
        elif info.family not in DATASETS[self.dataset]:
            valid = [d for d, families in DATASETS.items() if info.family in families]
            found.append(f"dataset: {self.model} is a {info.family} net; use dataset {' or '.join(valid)}")
        if self.dataset != "synthetic" and not self.data_dir:
            found.append(f"data_dir: the {self.dataset} dataset needs a data directory (--data-dir)")
        if self.shortcut is not None and (info.plain or self.shortcut not in SHORTCUT_OPTIONS):
            valid = "none (plain net)" if info.plain else ", ".join(SHORTCUT_OPTIONS)
            found.append(f"shortcut: {self.shortcut!r} is not valid for {self.model}; valid: {valid}")
        if (self.depth is None) == (info.depth is None):
            found.append(f"depth: {self.model} {'needs' if info.depth is None else 'takes no'} depth")
        elif self.depth is not None:
            try:
                blocks_per_stage(self.depth)
            except ValueError as error:
                found.append(f"depth: {error}")
        if self.normalization not in NORMALIZATIONS:
            found.append(f"normalization: unknown {self.normalization!r}; valid: {', '.join(NORMALIZATIONS)}")
        if self.validation_fraction is not None and not 0 < self.validation_fraction < 1:
            found.append(f"validation_fraction: must be in (0, 1), got {self.validation_fraction!r}")
        elif self.validation_fraction is not None and self.dataset == "imagenet":
            found.append("validation_fraction: ImageNet runs have no hold-out of train/ yet; valid: None")
        if not isinstance(self.validation_seed, int) or self.validation_seed < 0:
            found.append(f"validation_seed: must be an integer >= 0, got {self.validation_seed!r}")
        if self.precision not in PRECISIONS:
            found.append(f"precision: unknown {self.precision!r}; valid: {', '.join(PRECISIONS)}")
        if not isinstance(self.data_parallel, int) or self.data_parallel < 1:
            found.append(f"data_parallel: must be a positive integer, got {self.data_parallel!r}")
        elif self.recipe.batch_size % self.data_parallel:
            found.append(f"data_parallel: {self.data_parallel} workers cannot split batch {self.recipe.batch_size}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED:
            found.append(f"seed: must be an integer from 0 to {MAX_SEED}, got {self.seed!r}")
        if self.eval_every is not None and self.eval_every < 1:
            found.append(f"eval_every: must be a positive integer, got {self.eval_every!r}")
        if not isinstance(self.cuda_graph, bool):
            found.append(f"cuda_graph: must be true or false, got {self.cuda_graph!r}")
        if self.device is not None and not DEVICE_PATTERN.fullmatch(self.device):
            found.append(f"device: unknown device {self.device!r}; valid: cpu, cuda, cuda:N (or none: CUDA if any)")
        return found + self.recipe.problems()

    def validate(self) -> TrainConfig:
        """Return self, or raise one ValueError listing every bad field."""
        if found := self.problems():  # one problem stays one line
            raise ValueError("invalid training config:" + ("\n  " if len(found) > 1 else " ") + "\n  ".join(found))
        return self

    @property
    def model_spec(self) -> ModelSpec:
        """The net this run trains, as one value."""
        return ModelSpec.of(self.__dict__)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "recipe": self.recipe.to_dict()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        if unknown := set(values) - known:
            raise ValueError(f"unknown config fields {sorted(unknown)}; valid: {sorted(known)}")
        return cls(**{**values, "recipe": Recipe.from_dict(values.get("recipe", {}))})


def paper_recipe(model: str, depth: int | None = None) -> Recipe:
    """The paper's full recipe for `model`: the CIFAR one (with warm-up from 110 layers) or ImageNet's."""
    info = get_model_info(model)
    if info.family == "imagenet":
        return imagenet_recipe()
    return cifar_recipe(depth or info.depth or 0)


def load_data(config: TrainConfig, device: torch.device, shard: Shard | None = None) -> TrainingData:
    """The dataset of `config`, placed for training on `device` (this worker's share with data parallelism)."""
    batch_size, seed = config.recipe.batch_size, config.seed
    if config.dataset == "imagenet":
        from ..data.imagenet import ImageFolderData  # torchvision: imported by ImageNet trials only

        return ImageFolderData(
            config.data_dir,
            batch_size,
            seed=seed,
            device=device,
            workers=config.workers,
            ten_crop=config.ten_crop,
            multiscale=config.multiscale,
            shard=shard,
        )
    if config.dataset == "synthetic":
        splits = synthetic_splits(seed=seed)
    else:
        splits = load_cifar10(config.data_dir, download=config.download)
    if config.validation_fraction is not None:
        splits = splits.with_validation(config.validation_fraction, config.validation_seed)
    return TensorData(splits, batch_size, seed=seed, device=device, normalization=config.normalization, shard=shard)


def build_trainer(config: TrainConfig, device: torch.device | None = None) -> Trainer:
    """Validate `config`, then build its data, model (initialised from the seed) and trainer.

    With `data_parallel` > 1 this runs in each worker of a torch.distributed group (Ray Train starts
    it) and trains that worker's share; every worker builds the same initial model from the seed.
    """
    config.validate()
    shard = Shard.current()
    if shard.size != config.data_parallel:
        raise ValueError(f"data_parallel={config.data_parallel} but this process is in a group of {shard.size}")
    device = device or pick_device(config.device)
    data = load_data(config, device, shard)
    torch.manual_seed(config.seed)
    model = config.model_spec.build(num_classes=data.num_classes)
    return Trainer(
        model,
        data,
        config.recipe,
        device=device,
        eval_every=config.eval_every,
        precision=config.precision,
        shard=shard,
        top5=config.dataset == "imagenet" and data.num_classes > 5,  # ImageNet's tables give top-1 and top-5
        cuda_graph=config.cuda_graph,
    )
