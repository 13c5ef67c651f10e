"""CIFAR-10 loading (real subset, download over a local HTTP server), splits, augmentation, synthetic data."""

from __future__ import annotations

import functools
import hashlib
import http.server
import pickle
import shutil
import tarfile
import threading
from pathlib import Path

import pytest
import torch

from reslab.data import (
    DatasetNotFoundError,
    Normalizer,
    TensorData,
    crop_and_flip,
    download_cifar10,
    hold_out,
    load_cifar10,
    synthetic_splits,
)


def test_loads_the_real_subset_with_its_labels(cifar_subset: Path) -> None:
    splits = load_cifar10(cifar_subset)
    assert splits.train.images.shape == (4660, 3, 32, 32) and splits.train.images.dtype == torch.uint8
    assert splits.test.images.shape == (932, 3, 32, 32)
    assert splits.train.classes[0] == "airplane" and splits.train.num_classes == 10
    counts = splits.train.labels.bincount(minlength=10)
    assert counts.min() >= 5 * 77 and counts.max() <= 5 * 113  # roughly balanced, as the data README says
    assert 0 < splits.train.images.float().mean() < 255


def test_validation_split_is_seeded_disjoint_and_ninety_ten(cifar_subset: Path) -> None:
    a = load_cifar10(cifar_subset, validation_fraction=0.1, seed=3)
    b = load_cifar10(cifar_subset, validation_fraction=0.1, seed=3)
    c = load_cifar10(cifar_subset, validation_fraction=0.1, seed=4)
    assert (len(a.train), len(a.validation), len(a.test)) == (4194, 466, 932)  # the test set stays whole
    assert torch.equal(a.validation.images, b.validation.images)
    assert not torch.equal(a.validation.images, c.validation.images)
    assert torch.equal(a.test.images, load_cifar10(cifar_subset).test.images)
    train_rows = {bytes(x.flatten().tolist()) for x in a.train.images[:500]}
    assert not train_rows & {bytes(x.flatten().tolist()) for x in a.validation.images}


def test_every_trial_of_a_study_validates_on_the_same_split_whatever_its_seed(cifar_subset: Path) -> None:
    """The hold-out is seeded by `validation_seed` (fixed per study), not by the trial's seed: trials of
    different seeds are compared on the same validation images, and their test set is the real one."""
    from reslab.training import TrainConfig, cifar_recipe
    from reslab.training.config import load_data

    def data(seed: int, validation_seed: int = 0):
        config = TrainConfig(
            model="cifar_resnet20", recipe=cifar_recipe(20), data_dir=str(cifar_subset), seed=seed,
            validation_fraction=0.1, validation_seed=validation_seed,
        )  # fmt: skip
        return load_data(config, torch.device("cpu"))

    first, second, other = data(seed=1), data(seed=2), data(seed=1, validation_seed=5)
    assert first.has_validation and len(first.validation_labels) == 466 and len(first.test_labels) == 932
    assert torch.equal(first.validation_images, second.validation_images)
    assert not torch.equal(first.validation_images, other.validation_images)


def test_missing_dataset_names_the_directory_and_the_flag(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=rf"CIFAR-10 not found in {tmp_path}.*--download"):
        load_cifar10(tmp_path)


class Payload:
    """What a crafted pickle holds: unpickling it calls `open(marker, "w")`, which creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("planted", ["data_batch_2", "batches.meta"])
def test_a_crafted_batch_file_is_refused_without_running_its_payload(
    planted: str, cifar_subset: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "data"
    shutil.copytree(cifar_subset, folder)
    marker = tmp_path / "MARKER"
    entry = {b"data": [0] * 3072, b"labels": [0], b"label_names": [b"cat"], b"payload": Payload(marker)}
    (folder / planted).chmod(0o644)
    (folder / planted).write_bytes(pickle.dumps(entry, protocol=2))
    with pytest.raises(DatasetNotFoundError, match=rf"{planted} is damaged .*io.open.*refused.*copy the"):
        load_cifar10(folder)
    assert not marker.exists()


def test_the_original_python2_batches_still_load(tmp_path: Path) -> None:
    """The official archive's batches are protocol-2 pickles of Python 2 strings and a numpy array."""
    import numpy as np

    images = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    entry = {b"batch_label": b"training batch 1 of 5", b"labels": [3, 7], b"data": images, b"filenames": [b"a.png"]}
    for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"):
        (tmp_path / name).write_bytes(pickle.dumps(entry, protocol=2))
    (tmp_path / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"c%d" % i for i in range(10)]}, 2))
    splits = load_cifar10(tmp_path)
    assert splits.train.labels.tolist() == [3, 7] * 5 and splits.test.classes[3] == "c3"
    assert torch.equal(splits.test.images.flatten(), torch.from_numpy(images).flatten())


@pytest.fixture()
def served_archive(tmp_path: Path, cifar_subset: Path):
    """A cifar-10-python.tar.gz built from the subset, served by a real HTTP server on 127.0.0.1."""
    staging = tmp_path / "staging" / "cifar-10-batches-py"
    shutil.copytree(cifar_subset, staging)
    archive = tmp_path / "www" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(staging, arcname="cifar-10-batches-py")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(archive.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/{archive.name}"
    yield url, hashlib.md5(archive.read_bytes()).hexdigest()
    server.shutdown()


def test_download_fetches_checks_and_extracts(tmp_path: Path, served_archive) -> None:
    url, md5 = served_archive
    target = tmp_path / "data"
    splits = load_cifar10(target, download=True, url=url, md5=md5)
    assert len(splits.train) == 4660 and (target / "cifar-10-batches-py" / "test_batch").is_file()
    assert not list(target.glob("*.part"))  # the temporary archive is gone


def test_download_with_a_wrong_checksum_extracts_nothing(tmp_path: Path, served_archive) -> None:
    url, _ = served_archive
    with pytest.raises(OSError, match="corrupt: md5"):
        download_cifar10(tmp_path / "data", url=url, md5="0" * 32)
    assert list((tmp_path / "data").iterdir()) == []


def test_pixel_mean_normalisation_centres_the_training_set() -> None:
    splits = synthetic_splits(num_train=200, num_test=10)
    pixel = Normalizer(splits.train, "pixel_mean")(splits.train.images)
    assert pixel.mean(dim=0).abs().max() < 1e-4  # every pixel position has mean zero
    channel = Normalizer(splits.train, "channel")(splits.train.images)
    assert channel.mean(dim=(0, 2, 3)).abs().max() < 1e-4
    assert channel.std(dim=(0, 2, 3)).sub(1).abs().max() < 1e-3
    with pytest.raises(ValueError, match="valid: pixel_mean, channel"):
        Normalizer(splits.train, "zca")


def test_crop_and_flip_takes_real_windows_of_the_padded_image() -> None:
    images = torch.randint(1, 256, (64, 3, 32, 32), dtype=torch.uint8)  # no zeros: padding is detectable
    out = crop_and_flip(images, torch.Generator().manual_seed(0))
    assert out.shape == images.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4))
    flips = 0
    for original, crop in zip(padded, out, strict=True):
        windows = {
            (dy, dx, f)
            for dy in range(9)
            for dx in range(9)
            for f in (False, True)
            if torch.equal(crop, _window(original, dy, dx, f))
        }
        assert windows, "every output is a (possibly flipped) 32x32 window of the padded image"
        flips += all(f for _, _, f in windows)
    assert 16 <= flips <= 48  # about half are flipped
    assert not torch.equal(out, crop_and_flip(images, torch.Generator().manual_seed(1)))
    assert torch.equal(out, crop_and_flip(images, torch.Generator().manual_seed(0)))


def _window(padded: torch.Tensor, dy: int, dx: int, flip: bool) -> torch.Tensor:
    crop = padded[:, dy : dy + 32, dx : dx + 32]
    return crop.flip(-1) if flip else crop


def test_batches_are_a_pure_function_of_seed_and_iteration() -> None:
    splits = synthetic_splits(num_train=300, num_test=20)
    first, second = TensorData(splits, 64, seed=5), TensorData(splits, 64, seed=5)
    for iteration in (7, 0, 3, 12):  # any order: no hidden state
        x1, y1 = first.train_batch(iteration)
        x2, y2 = second.train_batch(iteration)
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    epoch = torch.cat([first.train_batch(i)[1] for i in range(first.steps_per_epoch)])
    assert len(epoch) == 256  # 4 full batches; the partial one is dropped
    assert not torch.equal(first.train_batch(0)[1], TensorData(splits, 64, seed=6).train_batch(0)[1])
    with pytest.raises(ValueError, match="between 1 and the 300 training images"):
        TensorData(splits, 301, seed=0)


def test_synthetic_data_is_deterministic_and_labelled() -> None:
    a, b = synthetic_splits(num_train=100, num_test=30, seed=1), synthetic_splits(num_train=100, num_test=30, seed=1)
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.test.labels, b.test.labels)
    assert a.train.images.shape == (100, 3, 32, 32) and set(a.train.labels.tolist()) <= set(range(10))
    assert not torch.equal(a.train.images, synthetic_splits(num_train=100, num_test=30, seed=2).train.images)


def test_hold_out_rejects_a_fraction_outside_zero_one() -> None:
    with pytest.raises(ValueError, match=r"must be in \(0, 1\)"):
        hold_out(synthetic_splits(num_train=20, num_test=2).train, 1.5, seed=0)


def test_a_node_copies_its_data_folder_once_from_a_folder_or_an_archive_source(cifar_subset, tmp_path) -> None:
    """--data-source: a node lacking --data-dir copies it (a folder as it is, an archive unpacked), once;
    a missing source is one message before any trial."""
    from reslab.data import DatasetNotFoundError, check_data_dir
    from reslab.data.fetch import check_source, fetch_dataset

    target = tmp_path / "node" / "cifar10"
    assert fetch_dataset(str(cifar_subset), str(target), 10**9) is True
    check_data_dir("cifar10", target)
    assert fetch_dataset(str(cifar_subset), str(target), 10**9) is False  # there already: nothing copied
    assert not [p.name for p in target.parent.iterdir() if ".partial" in p.name]

    archive = tmp_path / "cifar-10-python.tar.gz"  # the layout of CIFAR-10's own download
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(cifar_subset, arcname="cifar-10-batches-py")
    check_source(str(archive))
    unpacked = tmp_path / "other-node" / "cifar10"
    unpacked.mkdir(parents=True)  # an empty folder gives way to the copy
    assert fetch_dataset(str(archive), str(unpacked), 10**9) is True
    check_data_dir("cifar10", unpacked)
    assert (unpacked / "cifar-10-batches-py" / "data_batch_1").is_file()

    for missing in (tmp_path / "nowhere", tmp_path / "nowhere.tar.gz"):
        with pytest.raises(DatasetNotFoundError, match=f"data source {missing} is not an? (folder|archive)"):
            check_source(str(missing))
