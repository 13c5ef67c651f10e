"""Training throughput of reslab's loop against a conventional reference, measured in one process.

The reference is the loop most CIFAR code uses: torchvision's `DataLoader` over PIL images with
per-image transforms (RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor, Normalize) feeding
the same model and optimiser in fp32. reslab's loop is `Trainer.run` on `TensorData` (whole-batch
augmentation on the device; bf16 and channels_last on CUDA). Both run on the same data and device
in the same session, so the ratio is meaningful even on a noisy machine.
"""

from __future__ import annotations

import resource
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms
from torchvision.transforms.functional import to_pil_image

from .data import Splits, TensorData, synthetic_splits
from .models import create_model, get_model_info
from .training import Recipe, Trainer, pick_device
from .training.loop import precision_choice

WARMUP_ITERATIONS = 3  # untimed steps first: allocator, cuDNN autotuning, worker start-up


@dataclass(frozen=True)
class BenchResult:
    """Images per second of both loops on one model, and their ratio."""

    model: str
    device: str
    batch_size: int
    precision: str  # reslab's precision setting (the reference always trains in fp32)
    precision_used: str  # what that setting chose here, and why (`training.loop.precision_choice`)
    reslab_images_per_second: float
    reference_images_per_second: float
    speedup: float  # reslab / reference
    reslab_peak_memory_mb: float
    reference_peak_memory_mb: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class PILDataset(Dataset):
    """The usual torchvision-style dataset: one PIL image per item, transformed per image."""

    def __init__(self, splits: Splits, transform: transforms.Compose) -> None:
        self.images = [to_pil_image(image) for image in splits.train.images]
        self.labels = splits.train.labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.images[index]), self.labels[index]


def _peak_memory_mb(device: torch.device) -> float:
    """Peak CUDA memory since the last reset; on the CPU, the process's peak resident set so far."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)


def reslab_throughput(
    model_name: str, splits: Splits, iterations: int, batch_size: int, device: torch.device, precision: str = "auto"
) -> float:
    """Images/s of `Trainer.run` over `iterations` steps, timed after the warm-up steps."""
    torch.manual_seed(0)
    data = TensorData(splits, batch_size, seed=0, device=device)
    recipe = Recipe(batch_size=batch_size, iterations=WARMUP_ITERATIONS + iterations, milestones=())
    trainer = Trainer(
        create_model(model_name), data, recipe, device=device, eval_every=WARMUP_ITERATIONS, precision=precision
    )
    trainer.run()
    return trainer.history[-1].images_per_second


def reference_throughput(
    model_name: str, splits: Splits, iterations: int, batch_size: int, device: torch.device, workers: int
) -> float:
    """Images/s of a conventional DataLoader + per-image-transform loop over the same steps."""
    torch.manual_seed(0)
    model = create_model(model_name).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    mean = (splits.train.images.float() / 255).mean(dim=(0, 2, 3)).tolist()
    std = (splits.train.images.float() / 255).std(dim=(0, 2, 3)).tolist()
    transform = transforms.Compose(
        [
            transforms.RandomCrop(32, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
        ]
    )
    loader = DataLoader(
        PILDataset(splits, transform),
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
    )
    batches, done, started = iter(loader), 0, 0.0
    while done < WARMUP_ITERATIONS + iterations:
        if done == WARMUP_ITERATIONS:
            _sync(device)
            started = time.perf_counter()
        try:
            images, labels = next(batches)
        except StopIteration:
            batches = iter(loader)
            continue
        loss = F.cross_entropy(model(images.to(device, non_blocking=True)), labels.to(device, non_blocking=True))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        done += 1
    _sync(device)
    return iterations * batch_size / (time.perf_counter() - started)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_benchmark(
    models: list[str],
    *,
    iterations: int = 20,
    batch_size: int = 128,
    reference_workers: int = 2,
    device: str | None = None,
    precision: str = "auto",
    num_images: int = 10_000,
) -> list[BenchResult]:
    """Both loops on each model, on the same CIFAR-sized synthetic images (content does not matter
    for throughput; the full CIFAR-10 training set is 50,000 such images)."""
    for name in models:
        get_model_info(name)  # an unknown name fails here, before any timing
    target = pick_device(device)
    splits = synthetic_splits(num_train=num_images, num_test=1)  # a 1-image test set: evaluation costs nothing
    results = []
    for name in models:
        _reset_peak(target)
        ours = reslab_throughput(name, splits, iterations, batch_size, target, precision)
        ours_memory = _peak_memory_mb(target)
        _reset_peak(target)
        theirs = reference_throughput(name, splits, iterations, batch_size, target, reference_workers)
        theirs_memory = _peak_memory_mb(target)
        results.append(
            BenchResult(
                name,
                str(target),
                batch_size,
                precision,
                precision_choice(precision, target)[1],
                ours,
                theirs,
                ours / theirs,
                ours_memory,
                theirs_memory,
            )
        )
    return results


def format_results(results: list[BenchResult]) -> str:
    """A table of both figures and the ratio per model."""
    memory_note = "peak CUDA memory" if results and results[0].device.startswith("cuda") else "process peak RSS"
    lines = [
        f"{'model':<18} {'reslab img/s':>13} {'reference img/s':>16} {'ratio':>7} "
        f"{'reslab MB':>10} {'reference MB':>13}   ({memory_note})"
    ]
    for r in results:
        lines.append(
            f"{r.model:<18} {r.reslab_images_per_second:>13.1f} {r.reference_images_per_second:>16.1f} "
            f"{r.speedup:>6.2f}x {r.reslab_peak_memory_mb:>10.0f} {r.reference_peak_memory_mb:>13.0f}"
        )
    if results:
        lines.append(f"reslab's precision: {results[0].precision_used}; the reference trains in fp32")
    return "\n".join(lines)
