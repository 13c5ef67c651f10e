"""Is a data folder what a dataset needs? One check, run before any trial starts (on the driver, or on
every node of a cluster by a small Ray task), so that a wrong `--data-dir` is one message naming the
expected layout instead of trials that fail and retry. (A trial on a node added later meets the loaders'
own DatasetNotFoundError and ends as failed at once.)
"""

from __future__ import annotations

from pathlib import Path

from .cifar10 import BATCHES_DIR, TEST_FILE, TRAIN_FILES, DatasetNotFoundError, check_batch_file, find_batches_dir

LAYOUTS = {
    "cifar10": f"the original python batches {', '.join(TRAIN_FILES)} and {TEST_FILE}, in the folder or in its "
    f"{BATCHES_DIR}/",
    "imagenet": "train/ and val/ in the ImageFolder layout: train/<class>/<image>, val/<class>/<image>",
}


def _imagenet_root(folder: Path) -> bool:
    splits = [folder / "train", folder / "val"]
    return all(split.is_dir() and any(c.is_dir() for c in split.iterdir()) for split in splits)


def detect_dataset(folder: str | Path) -> str | None:
    """Which dataset's layout the folder has ("cifar10", "imagenet"), or None."""
    path = Path(folder).expanduser()
    if not path.is_dir():
        return None
    if find_batches_dir(path) is not None:
        return "cifar10"
    return "imagenet" if _imagenet_root(path) else None


def check_data_dir(dataset: str, data_dir: str | Path | None) -> None:
    """Raise DatasetNotFoundError (one message: the folder, the layout expected, what is there instead)
    unless `data_dir` holds `dataset` in the layout reslab reads. The synthetic set needs no folder."""
    if dataset == "synthetic" or dataset not in LAYOUTS:
        return
    if not data_dir:
        raise DatasetNotFoundError(f"the {dataset} dataset needs a data folder (--data-dir): {LAYOUTS[dataset]}")
    path = Path(data_dir).expanduser()
    if not path.is_dir():
        raise DatasetNotFoundError(
            f"data folder {path} does not exist; point --data-dir at the folder with {dataset}: {LAYOUTS[dataset]}"
        )
    found = detect_dataset(path)
    if found != dataset:
        instead = f"it holds {found}" if found else "it holds neither layout"
        raise DatasetNotFoundError(
            f"data folder {path} is not {dataset} ({instead}); {dataset} needs {LAYOUTS[dataset]}"
        )
    if dataset == "cifar10":  # a truncated copy is known here in microseconds, not in every trial
        batches = find_batches_dir(path)
        for name in (*TRAIN_FILES, TEST_FILE):
            check_batch_file(batches / name)
