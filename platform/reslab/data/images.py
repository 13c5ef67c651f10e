"""In-memory image sets: one uint8 tensor of images and one tensor of labels per split.

Holding a dataset as a single tensor (50,000 CIFAR images are 150 MB) lets batches be gathered and
augmented by tensor ops on the training device, with no per-image Python in the hot loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ImageSet:
    """A split: `images` uint8 (N, 3, H, W), `labels` int64 (N,), and the class names."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W); got {self.images.dtype} {tuple(self.images.shape)}")
        if len(self.images) != len(self.labels):
            raise ValueError(f"{len(self.images)} images but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, indices: torch.Tensor) -> ImageSet:
        """The images at `indices`, in that order."""
        return ImageSet(self.images[indices], self.labels[indices], self.classes)


@dataclass(frozen=True)
class Splits:
    """What a training run needs: the set it trains on, the set it reports test error on, and optionally a
    validation set held out of the training set (what a search selects on; the test set is never selected on)."""

    train: ImageSet
    test: ImageSet
    name: str  # e.g. "cifar10", "cifar10 (45k/5k train/validation)", "synthetic"
    validation: ImageSet | None = None

    def with_validation(self, fraction: float, seed: int) -> Splits:
        """These splits with `fraction` of the training set held out as validation (`hold_out`)."""
        train, validation = hold_out(self.train, fraction, seed)
        return Splits(train, self.test, f"{self.name} ({len(train)}/{len(validation)} train/validation)", validation)


def hold_out(train: ImageSet, fraction: float, seed: int) -> tuple[ImageSet, ImageSet]:
    """Split `train` by a seeded permutation into (train, validation): the paper's 45k/5k protocol.

    The same seed always gives the same split, so every trial of a study validates on the same
    images regardless of where it runs.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must be in (0, 1); got {fraction!r}")
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    num_val = round(len(train) * fraction)
    return train.subset(order[num_val:]), train.subset(order[:num_val])
