"""ImageNet in the `ImageFolder` layout (`root/train/<class>/*.JPEG`, `root/val/<class>/*.JPEG`)
with the augmentation of Section 3.4 and the paper's 10-crop testing.

Training: shorter side resized to a random size in [256, 480], a random 224x224 crop or its flip,
PCA colour ("lighting") augmentation as in AlexNet, mean subtraction. Testing: the centre 224 crop
of the image resized to 256, or the ten crops (corners + centre, and their flips) averaged.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, Subset
from torchvision import datasets
from torchvision.transforms import v2

from ..distributed import Shard
from .cifar10 import DatasetNotFoundError
from .stream import _seeded

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
# Eigen-decomposition of the RGB pixel covariance of ImageNet (Krizhevsky et al., 2012).
EIGENVALUES = (0.2175, 0.0188, 0.0045)
EIGENVECTORS = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)


class PCALighting(torch.nn.Module):
    """Add a random multiple of the RGB principal components (AlexNet's colour augmentation)."""

    def __init__(self, alpha_std: float = 0.1) -> None:
        super().__init__()
        self.alpha_std = alpha_std
        self.eigenvalues = torch.tensor(EIGENVALUES)
        self.eigenvectors = torch.tensor(EIGENVECTORS)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        alpha = torch.randn(3) * self.alpha_std
        shift = self.eigenvectors @ (alpha * self.eigenvalues)
        return image + shift.view(3, 1, 1)


class StackCrops:
    """Apply `transform` to each crop of a multi-crop tuple and stack them into one (crops, C, H, W) tensor.

    A plain callable, not a v2 transform: v2 transforms (Lambda included) see one image at a time.
    """

    def __init__(self, transform: v2.Compose) -> None:
        self.transform = transform

    def __call__(self, crops: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return torch.stack([self.transform(c) for c in crops])


def train_transform(crop: int = 224, short_side: tuple[int, int] = (256, 480)) -> v2.Compose:
    """Scale augmentation, random crop, flip and lighting, then per-channel mean/std normalisation."""
    return v2.Compose(
        [
            v2.ToImage(),
            v2.RandomResize(short_side[0], short_side[1] + 1, antialias=True),  # shorter side in [256, 480]
            v2.RandomCrop(crop),
            v2.RandomHorizontalFlip(),
            v2.ToDtype(torch.float32, scale=True),
            PCALighting(),
            v2.Normalize(MEAN, STD),
        ]
    )


def eval_transform(crop: int = 224, resize: int = 256, ten_crop: bool = False) -> v2.Compose:
    """Centre crop (one view, shape (3, H, W)) or the paper's 10 crops (shape (10, 3, H, W))."""
    to_float = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)]
    if not ten_crop:
        return v2.Compose([v2.ToImage(), v2.Resize(resize, antialias=True), v2.CenterCrop(crop), *to_float])
    return v2.Compose(
        [
            v2.ToImage(),
            v2.Resize(resize, antialias=True),
            v2.TenCrop(crop),
            StackCrops(v2.Compose(to_float)),
        ]
    )


MULTISCALE_SIDES = (224, 256, 384, 480, 640)  # Table 4: the shorter side of each scale


class MultiScale:
    """The paper's fully-convolutional multi-scale test (Table 4): the whole image, its shorter side resized
    to each of `sides`, each normalised; the net's global pooling takes any size, and the scores of the
    scales are averaged (`Trainer.evaluate`). Returns one tensor per scale."""

    def __init__(self, sides: tuple[int, ...] = MULTISCALE_SIDES) -> None:
        to_float = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)]
        self.scales = [v2.Compose([v2.ToImage(), v2.Resize(side, antialias=True), *to_float]) for side in sides]

    def __call__(self, image: object) -> list[torch.Tensor]:
        return [scale(image) for scale in self.scales]


def _one_image(items: list[tuple[list[torch.Tensor], int]]) -> tuple[list[torch.Tensor], torch.Tensor]:
    """A multi-scale batch of one image (its scales differ in size from every other image's)."""
    [(scales, label)] = items
    return [scale.unsqueeze(0) for scale in scales], torch.tensor([label])


class EpochBatchSampler(Sampler[list[int]]):
    """Endless batches of indices starting at `start_iteration`; epoch e visits the images in the
    order of a permutation seeded by (seed, e), so a resumed run sees the same images in the same order."""

    def __init__(
        self, num_images: int, batch_size: int, seed: int, start_iteration: int = 0, shard: Shard | None = None
    ) -> None:
        self.num_images, self.batch_size, self.seed = num_images, batch_size, seed
        self.shard = shard or Shard()  # yields only this worker's share of each global batch
        self.start_iteration = start_iteration
        self.steps_per_epoch = num_images // batch_size

    def __iter__(self) -> Iterator[list[int]]:
        iteration = self.start_iteration
        while True:
            epoch, step = divmod(iteration, self.steps_per_epoch)
            order = torch.randperm(self.num_images, generator=_seeded(self.seed, 0, epoch))
            yield self.shard.take(order[step * self.batch_size : (step + 1) * self.batch_size]).tolist()
            iteration += 1


def _image_folder(root: Path, split: str, transform: v2.Compose) -> datasets.ImageFolder:
    folder = root / split
    if not folder.is_dir():
        raise DatasetNotFoundError(
            f"ImageNet split {split!r} not found: expected {folder.resolve()}/<class>/<image>. "
            "Point --data-dir at a folder with train/ and val/ in the ImageFolder layout."
        )
    return datasets.ImageFolder(folder, transform=transform)


class ImageFolderData:
    """`TrainingData` for ImageNet-style folders, decoded by DataLoader workers."""

    def __init__(
        self,
        root: str | Path,
        batch_size: int,
        *,
        seed: int,
        device: torch.device | str = "cpu",
        workers: int = 4,
        ten_crop: bool = False,
        multiscale: bool = False,
        test_batch_size: int | None = None,
        shard: Shard | None = None,
    ) -> None:
        root = Path(root).expanduser()
        self.shard = shard or Shard()
        self.train_set = _image_folder(root, "train", train_transform())
        # curves are centre-crop, as the paper's Fig. 4; its tables' 10-crop test runs once, at the end
        self.test_set = _image_folder(root, "val", eval_transform())
        self.ten_crop_set = _image_folder(root, "val", eval_transform(ten_crop=True)) if ten_crop else None
        self.multiscale_set = _image_folder(root, "val", MultiScale()) if multiscale else None
        if self.train_set.classes != self.test_set.classes:
            raise ValueError(f"train/ and val/ under {root} have different class folders")
        if not 1 <= batch_size <= len(self.train_set):
            raise ValueError(f"batch size must be between 1 and the {len(self.train_set)} training images")
        self.num_classes = len(self.train_set.classes)
        self.train_images = len(self.train_set)
        self.batch_size, self.seed, self.device, self.workers = batch_size, seed, torch.device(device), workers
        self.test_batch_size = test_batch_size or batch_size
        self._next_iteration, self._batches = -1, iter(())

    def _loader(self, dataset: Dataset, **kwargs: object) -> DataLoader:
        pin = self.device.type == "cuda"
        return DataLoader(dataset, num_workers=self.workers, pin_memory=pin, persistent_workers=False, **kwargs)

    def train_batch(self, iteration: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch of training iteration `iteration`; a jump (a resume) restarts the workers there."""
        if iteration != self._next_iteration:
            sampler = EpochBatchSampler(len(self.train_set), self.batch_size, self.seed, iteration, self.shard)
            self._batches = iter(self._loader(self.train_set, batch_sampler=sampler))
        self._next_iteration = iteration + 1
        images, labels = next(self._batches)
        return images.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)

    def test_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The validation set in order, the centre 224 crop of each image (what every evaluation measures)."""
        return self._batches_of(self.test_set)

    def final_evaluations(self) -> dict[str, Iterator[tuple[torch.Tensor, torch.Tensor]]]:
        """The paper's final tests, run once at the end, where asked for: "10crop" (each input (batch, 10, 3,
        224, 224)) and "multiscale" (each input a list of one image at every scale)."""
        finals = {}
        if self.ten_crop_set is not None:
            finals["10crop"] = self._batches_of(self.ten_crop_set)
        if self.multiscale_set is not None:
            finals["multiscale"] = self._multiscale_batches(self.multiscale_set)
        return finals

    def _multiscale_batches(self, dataset: Dataset) -> Iterator[tuple[list[torch.Tensor], torch.Tensor]]:
        mine = Subset(dataset, range(self.shard.rank, len(dataset), self.shard.size))
        for scales, labels in self._loader(mine, batch_size=1, collate_fn=_one_image):
            yield [s.to(self.device, non_blocking=True) for s in scales], labels.to(self.device, non_blocking=True)

    def _batches_of(self, dataset: Dataset) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        mine = Subset(dataset, range(self.shard.rank, len(dataset), self.shard.size))
        for images, labels in self._loader(mine, batch_size=self.test_batch_size):
            yield images.to(self.device, non_blocking=True), labels.to(self.device, non_blocking=True)

    has_validation = False  # ImageNet's val/ folder is its test set; no hold-out of train/ yet

    def validation_batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return iter(())
