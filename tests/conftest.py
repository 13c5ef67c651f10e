"""Shared fixtures: the real CIFAR-10 subset, a tiny ImageNet-style folder, and the --run-slow gate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SUBSET = REPO.parent / "shared" / "data" / "cifar10-subset"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run the slow end-to-end tests (CI does)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow end-to-end test: run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def cifar_subset() -> Path:
    """The real 4,660 + 932 image CIFAR-10 subset shipped beside the checkout."""
    if not (SUBSET / "data_batch_1").is_file():
        pytest.skip(f"the real CIFAR-10 subset is not at {SUBSET} (it ships in ../shared/data)")
    return SUBSET


@pytest.fixture(scope="session")
def tiny_imagenet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ImageFolder tree of real JPEG files: 2 classes, 6 train and 2 val images each, odd sizes."""
    from PIL import Image

    root = tmp_path_factory.mktemp("tiny_imagenet")
    rng = np.random.default_rng(0)
    for split, count in (("train", 6), ("val", 2)):
        for cls, tint in (("n01440764", (200, 40, 40)), ("n01443537", (40, 40, 200))):
            folder = root / split / cls
            folder.mkdir(parents=True)
            for i in range(count):
                height, width = rng.integers(180, 300), rng.integers(180, 300)
                pixels = np.clip(rng.normal(tint, 30, (height, width, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{cls}_{i}.JPEG", quality=90)
    return root
