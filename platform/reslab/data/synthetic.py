"""A deterministic, learnable stand-in for CIFAR-10 for smoke runs and tests that need no files.

Each class has a fixed random colour template; an image is its class template, shifted by a few
pixels, plus noise. A small net learns it to well below chance within a few hundred iterations,
so a smoke run can tell a working pipeline from a broken one.
"""

from __future__ import annotations

import torch

from .images import ImageSet, Splits


def _make_images(templates: torch.Tensor, count: int, generator: torch.Generator) -> ImageSet:
    num_classes = len(templates)
    labels = torch.randint(0, num_classes, (count,), generator=generator)
    shifts = torch.randint(-3, 4, (count, 2), generator=generator)
    images = templates[labels]
    for i in range(count):  # runs once at construction, never in the training loop
        images[i] = torch.roll(images[i], shifts=tuple(shifts[i].tolist()), dims=(1, 2))
    noise = torch.randn(images.shape, generator=generator) * 48.0
    pixels = (images + noise).clamp(0, 255).round().to(torch.uint8)
    return ImageSet(pixels, labels, tuple(f"class{k}" for k in range(num_classes)))


def synthetic_splits(
    num_train: int = 2000, num_test: int = 500, *, num_classes: int = 10, image_size: int = 32, seed: int = 0
) -> Splits:
    """Train and test sets drawn from the same class templates; the same seed gives the same data."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(num_classes, 3, 4, 4, generator=generator) * 255.0
    templates = torch.nn.functional.interpolate(coarse, size=(image_size, image_size), mode="bilinear")
    train = _make_images(templates, num_train, generator)
    test = _make_images(templates, num_test, generator)
    return Splits(train, test, "synthetic")
