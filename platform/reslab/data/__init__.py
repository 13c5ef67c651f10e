"""Datasets as the training loop consumes them: CIFAR-10, ImageNet folders and a synthetic set."""

from .cifar10 import DatasetNotFoundError, download_cifar10, find_batches_dir, load_cifar10
from .imagenet import ImageFolderData
from .images import ImageSet, Splits, hold_out
from .stream import NORMALIZATIONS, Normalizer, TensorData, TrainingData, crop_and_flip
from .synthetic import synthetic_splits

__all__ = [
    "NORMALIZATIONS",
    "DatasetNotFoundError",
    "ImageFolderData",
    "ImageSet",
    "Normalizer",
    "Splits",
    "TensorData",
    "TrainingData",
    "crop_and_flip",
    "download_cifar10",
    "find_batches_dir",
    "hold_out",
    "load_cifar10",
    "synthetic_splits",
]
