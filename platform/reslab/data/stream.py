"""Batches for the training loop, gathered and augmented as whole-batch tensor ops on the device.

A training batch is a pure function of (seed, iteration): epoch e visits the images in the order of
a permutation seeded by (seed, e), and the crop offsets and flips of iteration i are drawn from a
generator seeded by (seed, i). Resuming at any iteration therefore reproduces the uninterrupted
run exactly, with nothing but the iteration number to save.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Literal, Protocol

import torch
import torch.nn.functional as F

from ..distributed import Shard
from .images import ImageSet, Splits

Normalization = Literal["pixel_mean", "channel"]
NORMALIZATIONS: tuple[str, ...] = ("pixel_mean", "channel")


def _seeded(*keys: int) -> torch.Generator:
    """A CPU generator seeded by a tuple of ints (CPU draws are identical on every device)."""
    seed = 0
    for key in keys:
        seed = (seed * 1_000_003 + key) % (2**63 - 1)
    return torch.Generator().manual_seed(seed)


class Normalizer:
    """Maps uint8 images to float inputs: the paper subtracts the per-pixel mean of the training set
    ("pixel_mean"); "channel" subtracts each channel's mean and divides by its std instead.

    Pixels are scaled to [0, 1] first; BN after the first convolution makes that scale immaterial.
    """

    def __init__(self, train: ImageSet, mode: Normalization = "pixel_mean") -> None:
        if mode not in NORMALIZATIONS:
            raise ValueError(f"unknown normalization {mode!r}; valid: {', '.join(NORMALIZATIONS)}")
        pixels = train.images.double() / 255.0
        if mode == "pixel_mean":
            self.mean, self.std = pixels.mean(dim=0).float(), torch.ones(1)
        else:
            self.mean = pixels.mean(dim=(0, 2, 3)).float().view(-1, 1, 1)
            self.std = pixels.std(dim=(0, 2, 3)).float().view(-1, 1, 1)
        self.mode = mode

    def to(self, device: torch.device | str) -> Normalizer:
        self.mean, self.std = self.mean.to(device), self.std.to(device)
        return self

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return (images.float() / 255.0 - self.mean) / self.std


def to_device(values: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Host-drawn values moved to `device` without waiting for it: to a GPU through pinned memory
    asynchronously (a plain copy from pageable memory would make the host wait for the GPU every step)."""
    if device.type != "cuda":
        return values.to(device)
    return values.pin_memory().to(device, non_blocking=True)


def crop_and_flip(images: torch.Tensor, generator: torch.Generator, padding: int = 4) -> torch.Tensor:
    """The paper's augmentation on a whole batch: zero-pad `padding` pixels on each side, take a
    random crop of the original size and flip half of the crops horizontally.

    One gather does all three: per image, row indices start at a random offset and column indices
    run forwards or backwards from theirs.
    """
    n, channels, height, width = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    offsets = to_device(torch.randint(0, 2 * padding + 1, (2, n), generator=generator), images.device)
    flips = to_device(torch.rand(n, generator=generator) < 0.5, images.device)
    rows = offsets[0, :, None] + torch.arange(height, device=images.device)
    steps = torch.arange(width, device=images.device)
    cols = offsets[1, :, None] + torch.where(flips[:, None], width - 1 - steps, steps)
    batch = torch.arange(n, device=images.device)[:, None, None, None]
    channel = torch.arange(channels, device=images.device)[None, :, None, None]
    return padded[batch, channel, rows[:, None, :, None], cols[:, None, None, :]]


class TrainingData(Protocol):
    """What the training loop consumes: training batches by iteration, the test set in batches, and the
    validation set in batches where there is one (`has_validation`)."""

    num_classes: int
    has_validation: bool
    train_images: int  # the training set's size before any hold-out: the whole dataset, or a part of it

    def train_batch(self, iteration: int) -> tuple[torch.Tensor, torch.Tensor]: ...

    def test_batches(self) -> Iterable[tuple[torch.Tensor, torch.Tensor]]: ...

    def validation_batches(self) -> Iterable[tuple[torch.Tensor, torch.Tensor]]: ...

    def final_evaluations(self) -> dict[str, Iterable[tuple[torch.Tensor, torch.Tensor]]]: ...


class TensorData:
    """`TrainingData` for sets held in memory (CIFAR-10, synthetic), living on the training device."""

    def __init__(
        self,
        splits: Splits,
        batch_size: int,
        *,
        seed: int,
        device: torch.device | str = "cpu",
        normalization: Normalization = "pixel_mean",
        augment: bool = True,
        test_batch_size: int = 1000,
        shard: Shard | None = None,
    ) -> None:
        train = splits.train
        self.shard = shard or Shard()
        if not 1 <= batch_size <= len(train):
            raise ValueError(f"batch size must be between 1 and the {len(train)} training images; got {batch_size}")
        self.normalize = Normalizer(train, normalization).to(device)
        self.images, self.labels = train.images.to(device), train.labels.to(device)
        self.test_images, self.test_labels = splits.test.images.to(device), splits.test.labels.to(device)
        validation = splits.validation
        self.has_validation = validation is not None
        self.validation_images = validation.images.to(device) if validation is not None else None
        self.validation_labels = validation.labels.to(device) if validation is not None else None
        self.num_classes = train.num_classes
        self.train_images = len(train) + (len(validation) if validation is not None else 0)
        self.batch_size, self.test_batch_size, self.seed, self.augment = batch_size, test_batch_size, seed, augment
        self.steps_per_epoch = len(train) // batch_size  # an epoch's last partial batch is dropped
        self._epoch, self._order = -1, torch.empty(0, dtype=torch.long)

    def _epoch_order(self, epoch: int) -> torch.Tensor:
        if epoch != self._epoch:
            order = torch.randperm(len(self.labels), generator=_seeded(self.seed, 0, epoch))
            self._epoch, self._order = epoch, to_device(order, self.images.device)
        return self._order

    def train_batch(self, iteration: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This worker's share of the (inputs, labels) of training iteration `iteration` (0-based)."""
        epoch, step = divmod(iteration, self.steps_per_epoch)
        index = self._epoch_order(epoch)[step * self.batch_size : (step + 1) * self.batch_size]
        images = self.images[index]
        if self.augment:  # drawn for the whole global batch, so every worker's share is the same as alone
            images = crop_and_flip(images, _seeded(self.seed, 1, iteration))
        return self.normalize(self.shard.take(images)), self.shard.take(self.labels[index])

    def test_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The test set in order, un-augmented (the paper tests on the single original 32x32 view)."""
        return self._in_order(self.test_images, self.test_labels)

    def validation_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The held-out validation set in order, un-augmented, as the test set is (nothing when there is none)."""
        if self.validation_images is None or self.validation_labels is None:
            return iter(())
        return self._in_order(self.validation_images, self.validation_labels)

    def final_evaluations(self) -> dict[str, Iterator[tuple[torch.Tensor, torch.Tensor]]]:
        """No extra final test for CIFAR: the paper tests on the single original view, as every evaluation does."""
        return {}

    def _in_order(self, images: torch.Tensor, labels: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for number, start in enumerate(range(0, len(labels), self.test_batch_size)):
            if not self.shard.owns(number):
                continue
            end = start + self.test_batch_size
            yield self.normalize(images[start:end]), labels[start:end]
