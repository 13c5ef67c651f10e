"""CIFAR-10 read straight from the original python-pickle batches (`cifar-10-batches-py/`).

torchvision's `CIFAR10` checks md5 sums of the full files and so refuses subsets such as
`shared/data/cifar10-subset`; reading the pickles directly works on both. When the data are
missing and downloading is allowed, the official archive is fetched, checked and extracted.
"""

from __future__ import annotations

import hashlib
import pickle
import tarfile
import tempfile
import urllib.request
from pathlib import Path

import numpy as np
import torch

from .archive import default_cap, extract_tar
from .images import ImageSet, Splits

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
BATCHES_DIR = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"


class DatasetNotFoundError(FileNotFoundError):
    """The dataset is not where the run was told to look, and downloading was not allowed."""


def damaged(path: Path, problem: str) -> DatasetNotFoundError:
    """The error for a dataset file that is there but unusable (truncated copy, wrong file): what to do."""
    return DatasetNotFoundError(
        f"{path} is damaged ({problem}); copy the dataset folder again, or delete it and pass --download"
    )


def check_batch_file(path: Path) -> None:
    """Raise for a batch file that is visibly cut short, without reading it: every CIFAR-10 batch is one
    pickle, which opens with the PROTO opcode (0x80) and ends with STOP ("."). Run before any trial
    starts; a damage this misses is met by `_read_batch` in the trial, which then fails once."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(1)
        f.seek(max(size - 1, 0))
        tail = f.read(1)
    if head != b"\x80" or tail != b".":
        raise damaged(path, f"{size:,} bytes, not a complete pickled batch: truncated or not a CIFAR-10 file")


# The only globals a CIFAR-10 batch pickles: numpy arrays (under numpy 1's and numpy 2's module names) and the
# helper protocol 2 uses for bytes. Anything else (os.system, builtins.eval, ...) is a crafted file.
NUMPY_ARRAY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")
BATCH_GLOBALS = frozenset(
    {(module, name) for module in NUMPY_ARRAY_MODULES for name in ("_reconstruct", "scalar")}
    | {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}
)


class BatchUnpickler(pickle.Unpickler):
    """Reads a batch file as data: dicts, lists, bytes, str, numbers and numpy arrays, nothing callable.

    `pickle.load` runs whatever a file names (a crafted file in --data-dir would run its payload in every
    trial worker); this unpickler refuses every global outside BATCH_GLOBALS before it is called."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in BATCH_GLOBALS:
            raise pickle.UnpicklingError(
                f"it refers to {module}.{name}, which a CIFAR-10 batch never holds; refused without running it "
                "(a crafted file can run code when unpickled)"
            )
        return super().find_class(module, name)


def load_batch_pickle(path: Path) -> dict:
    """One batch (or batches.meta) file read with `BatchUnpickler`; Python 2's strings stay bytes."""
    with path.open("rb") as f:
        entry = BatchUnpickler(f, encoding="bytes").load()
    if not isinstance(entry, dict):
        raise TypeError(f"it holds a {type(entry).__name__}, not a dict of images and labels")
    return entry


def find_batches_dir(data_dir: str | Path) -> Path | None:
    """The folder holding the pickled batches: `data_dir` itself or its `cifar-10-batches-py/`."""
    root = Path(data_dir).expanduser()
    for candidate in (root, root / BATCHES_DIR):
        if all((candidate / name).is_file() for name in (*TRAIN_FILES, TEST_FILE)):
            return candidate
    return None


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        entry = load_batch_pickle(path)
        images = np.asarray(entry[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        return images, np.asarray(entry[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError) as error:
        raise damaged(path, f"{type(error).__name__}: {error}") from None


def _read_classes(batches_dir: Path) -> tuple[str, ...]:
    meta = batches_dir / "batches.meta"
    if not meta.is_file():
        return tuple(str(i) for i in range(10))
    try:
        names = load_batch_pickle(meta)[b"label_names"]
        return tuple(n.decode() for n in names)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, AttributeError) as error:
        raise damaged(meta, f"{type(error).__name__}: {error}") from None


def _read_split(batches_dir: Path, files: tuple[str, ...], classes: tuple[str, ...]) -> ImageSet:
    parts = [_read_batch(batches_dir / name) for name in files]
    images = torch.from_numpy(np.concatenate([p[0] for p in parts]))
    labels = torch.from_numpy(np.concatenate([p[1] for p in parts]))
    return ImageSet(images, labels, classes)


def load_cifar10(
    data_dir: str | Path,
    *,
    download: bool = False,
    validation_fraction: float | None = None,
    seed: int = 0,
    url: str = CIFAR10_URL,
    md5: str = CIFAR10_MD5,
) -> Splits:
    """Load CIFAR-10 from `data_dir`, downloading it first when missing and `download` is set.

    With `validation_fraction` (0.1 is the paper's 45k/5k), the training batches are split by a
    permutation seeded with `seed` into training and validation sets; the test set stays the test batch.
    """
    data_dir = Path(data_dir).expanduser()
    batches_dir = find_batches_dir(data_dir)
    if batches_dir is None and download:
        download_cifar10(data_dir, url=url, md5=md5)
        batches_dir = find_batches_dir(data_dir)
    if batches_dir is None:
        raise DatasetNotFoundError(
            f"CIFAR-10 not found in {Path(data_dir).resolve()}: expected {', '.join(TRAIN_FILES)} and "
            f"{TEST_FILE} there or in its {BATCHES_DIR}/ folder. Pass --download (download=True) to fetch "
            f"it, or point --data-dir at a folder that has it."
        )
    classes = _read_classes(batches_dir)
    train = _read_split(batches_dir, TRAIN_FILES, classes)
    splits = Splits(train, _read_split(batches_dir, (TEST_FILE,), classes), "cifar10")
    return splits if validation_fraction is None else splits.with_validation(validation_fraction, seed)


def download_cifar10(data_dir: str | Path, *, url: str = CIFAR10_URL, md5: str = CIFAR10_MD5) -> Path:
    """Fetch the archive at `url`, check its md5 and extract it into `data_dir`.

    Nothing is left behind on failure: the archive goes to a temporary file that is removed, a wrong checksum
    raises before anything is extracted, and the archive is unpacked into a temporary folder whose entries are
    moved into place only once all of it is out (an entry of that name already there is not replaced).
    """
    target = Path(data_dir)
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target, suffix=".tar.gz.part", delete=False) as tmp:
        archive = Path(tmp.name)
    try:
        digest = _fetch(url, archive)
        if digest != md5:
            raise OSError(f"download from {url} is corrupt: md5 {digest}, expected {md5}")
        with tempfile.TemporaryDirectory(dir=target, prefix=".unpacking-") as unpacked:
            with tarfile.open(archive, "r:gz") as tar:
                extract_tar(tar, Path(unpacked), default_cap("cifar10"))
            for entry in sorted(Path(unpacked).iterdir()):
                if (target / entry.name).exists():
                    raise OSError(f"{target / entry.name} is there already; move it away to download CIFAR-10")
                entry.rename(target / entry.name)
    finally:
        archive.unlink(missing_ok=True)
    return target


def _fetch(url: str, destination: Path) -> str:
    """Stream `url` into `destination`, returning the md5 of what was written."""
    md5 = hashlib.md5()
    with urllib.request.urlopen(url, timeout=60) as response, destination.open("wb") as out:
        while chunk := response.read(1 << 20):
            md5.update(chunk)
            out.write(chunk)
    return md5.hexdigest()
