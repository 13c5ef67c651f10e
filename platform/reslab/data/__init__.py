"""Datasets as the training loop consumes them: CIFAR-10, ImageNet folders and a synthetic set."""

from typing import Any

from .cifar10 import DatasetNotFoundError, download_cifar10, find_batches_dir, load_cifar10
from .images import ImageSet, Splits, hold_out
from .layout import LAYOUTS, check_data_dir, detect_dataset
from .stream import NORMALIZATIONS, Normalizer, TensorData, TrainingData, crop_and_flip
from .synthetic import synthetic_splits

__all__ = [
    "LAYOUTS",
    "NORMALIZATIONS",
    "DatasetNotFoundError",
    "ImageFolderData",
    "ImageSet",
    "Normalizer",
    "Splits",
    "TensorData",
    "TrainingData",
    "check_data_dir",
    "crop_and_flip",
    "detect_dataset",
    "download_cifar10",
    "find_batches_dir",
    "hold_out",
    "load_cifar10",
    "synthetic_splits",
]


def __getattr__(name: str) -> Any:
    """`ImageFolderData` on first use: it needs torchvision, whose import (about 1.5 s: it loads torch._dynamo)
    every CIFAR trial's worker and every `reslab` command would otherwise pay."""
    if name == "ImageFolderData":
        from .imagenet import ImageFolderData

        return ImageFolderData
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
