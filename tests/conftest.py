"""Shared fixtures: the real CIFAR-10 subset, a tiny ImageNet folder, moto's S3 server, the --run-slow gate."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from helpers import REPO, free_port

SUBSET = REPO.parent / "shared" / "data" / "cifar10-subset"
BUCKET = "reslab-results"  # the bucket the s3 fixture makes


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run the slow end-to-end tests (CI does)")


TIERS = {"end_to_end": "e2e", "cluster": "cluster"}  # folders whose tests are a tier of their own (`-m e2e`)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its tier (by folder; `browser` for those that drive Chromium), then skip the slow
    ones unless --run-slow."""
    for item in items:
        if (tier := TIERS.get(item.path.parent.name)) is not None:
            item.add_marker(tier)
        if "chromium" in getattr(item, "fixturenames", ()):
            item.add_marker("browser")
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


@pytest.fixture
def s3() -> Iterator[dict[str, str]]:
    """moto's S3 server on 127.0.0.1 with an empty bucket; yields the environment that points boto3
    (MLflow's artifacts), pyarrow (Ray Tune's storage) and reslab at it."""
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    try:
        deadline = time.monotonic() + 60
        while not _http_answers(env["AWS_ENDPOINT_URL"]):
            assert time.monotonic() < deadline, "moto's S3 server did not answer in 60 s"
            time.sleep(0.2)
        bucket_client(env).create_bucket(Bucket=BUCKET)
        yield env
    finally:
        stop_group(server)


def _http_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def bucket_client(env: dict[str, str]):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
    )


def stop_group(process: subprocess.Popen) -> None:
    """End a process the test started in its own process group (start_new_session): SIGTERM, then SIGKILL."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
