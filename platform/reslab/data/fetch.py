"""Data that each node copies for itself, when a study needs it: `--data-source` says where from.

A cluster's workers come and go (the autoscaler adds them for a study's trials), so copying ImageNet onto
every node at setup would cost every new worker ~150 GB, CIFAR studies included. Instead a trial whose
node lacks its `--data-dir` copies it from the source first; the other trials on that node wait for that
one copy (a file lock beside the folder) and the next trials find it there.

A source is a folder (s3://bucket/imagenet, gs://..., or a path such as an NFS mount) copied as it is, or
a .tar / .tar.gz / .tgz archive (those URIs, or https://, e.g. CIFAR-10's own download) unpacked. Either way
nothing lands outside the data folder (`archive`): links, devices and names that climb out are refused, and an
archive may not unpack to more than a cap (a few times the dataset's size; `--data-max-gb` raises it).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tarfile
import urllib.request
from pathlib import Path

from .archive import copy_folder, extract_tar
from .cifar10 import DatasetNotFoundError

ARCHIVES = (".tar", ".tar.gz", ".tgz")


def _is_archive(source: str) -> bool:
    return source.endswith(ARCHIVES)


def _filesystem(source: str):
    """pyarrow's filesystem and path for a URI (s3://...) or a local path (~ expanded)."""
    import pyarrow.fs

    return pyarrow.fs.FileSystem.from_uri(source if "://" in source else str(Path(source).expanduser()))


def _has_data(folder: Path) -> bool:
    return folder.is_dir() and any(folder.iterdir())


def check_source(source: str) -> None:
    """Raise DatasetNotFoundError naming `source` unless it exists: checked before any trial starts."""
    if source.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(urllib.request.Request(source, method="HEAD"), timeout=30):
                return
        except OSError as error:
            raise DatasetNotFoundError(f"data source {source} does not answer ({error})") from None
    import pyarrow.fs

    try:
        fs, path = _filesystem(source)
        kind = fs.get_file_info(path).type
    except (OSError, ValueError) as error:
        raise DatasetNotFoundError(f"data source {source} cannot be read ({error})") from None
    expected = pyarrow.fs.FileType.File if _is_archive(source) else pyarrow.fs.FileType.Directory
    if kind != expected:
        what = "an archive" if _is_archive(source) else "a folder"
        raise DatasetNotFoundError(f"data source {source} is not {what} that exists")


def fetch_dataset(source: str, data_dir: str, max_bytes: int) -> bool:
    """Copy `source` into `data_dir` on this node unless the folder is already there. Concurrent trials on
    one node copy once: the rest wait on the lock and then find the folder. The copy lands under a
    temporary name and is renamed into place, so a copy cut short is never mistaken for the data.
    An archive that would unpack to more than `max_bytes` is refused. Returns whether this call copied."""
    target = Path(data_dir).expanduser()
    if _has_data(target):
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _has_data(target):
            return False
        partial = target.parent / f".{target.name}.partial-{os.getpid()}"
        shutil.rmtree(partial, ignore_errors=True)
        try:
            if _is_archive(source):
                _unpack(source, partial, max_bytes)
            else:
                _copy_folder(source, partial)
            if target.is_dir():
                target.rmdir()  # an empty folder (made by hand or by a mount point's parent) gives way
            partial.rename(target)
        except (OSError, tarfile.TarError) as error:
            shutil.rmtree(partial, ignore_errors=True)
            raise DatasetNotFoundError(f"could not copy data source {source} to {target}: {error}") from None
    return True


def _copy_folder(source: str, destination: Path) -> None:
    """A bucket's folder through pyarrow (an object store has no links); a local one walked by reslab, since
    pyarrow follows links out of the folder and widens the files' modes."""
    import pyarrow.fs

    if "://" not in source:
        copy_folder(Path(source).expanduser(), destination)
        return
    destination.mkdir(parents=True)
    pyarrow.fs.copy_files(source, str(destination), destination_filesystem=pyarrow.fs.LocalFileSystem())


def _unpack(source: str, destination: Path, max_bytes: int) -> None:
    """Unpack an archive (files and folders only, at most `max_bytes`); a single top folder in it
    (cifar-10-batches-py/) is kept, as the loaders accept."""
    destination.mkdir(parents=True)
    if source.startswith(("http://", "https://")):
        stream = urllib.request.urlopen(source, timeout=60)
    else:
        fs, path = _filesystem(source)
        stream = fs.open_input_stream(path)
    with stream, tarfile.open(fileobj=stream, mode="r|*") as archive:
        extract_tar(archive, destination, max_bytes)
