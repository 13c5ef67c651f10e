"""Unpacking an archive and copying a folder so that nothing lands outside the target folder.

Python's own `tarfile` filters (`filter="data"`) were bypassed more than once (CVE-2025-4517: a chain of long
symlinks that `realpath` stops resolving; later, empty-named links and the hard-link fallback), and the
interpreters this project runs on predate the fixes. A dataset needs no links, devices or special modes, so
reslab never lets `tarfile` create anything: it reads each member and writes regular files and folders
itself, refusing every other kind of member, any name that is absolute or climbs with `..`, and more bytes
than a cap. Folder sources are walked without following links out of the source.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
from pathlib import Path, PurePosixPath
from typing import IO

GB = 1_000_000_000
# what each dataset unpacks to (CIFAR-10's python batches; ILSVRC2012's train and val folders), and the cap an
# archive for it may expand to by default: a few times that, so a crafted archive cannot fill a node's disk
KNOWN_SIZE_BYTES = {"cifar10": 186_000_000, "imagenet": 147 * GB}
CAP_FACTOR = 4
DEFAULT_CAP_BYTES = 4 * GB  # a dataset reslab does not know the size of


class UnsafeArchive(OSError):
    """An archive or folder source that would write outside its target, or more than its cap; names the member."""


def default_cap(dataset: str | None) -> int:
    """Bytes an archive for `dataset` may unpack to unless `--data-max-gb` says otherwise."""
    return CAP_FACTOR * KNOWN_SIZE_BYTES[dataset] if dataset in KNOWN_SIZE_BYTES else DEFAULT_CAP_BYTES


def member_path(name: str, target: Path) -> Path:
    """Where a member named `name` lands under `target`, or UnsafeArchive when the name leaves it."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if not parts or name.startswith(("/", "\\")) or any(p in ("..", "") for p in parts) or ":" in parts[0]:
        raise UnsafeArchive(f"archive member {name!r} points outside the data folder")
    return target.joinpath(*(p for p in parts if p != "."))


def extract_tar(archive: tarfile.TarFile, target: Path, max_bytes: int) -> int:
    """Write the archive's folders and regular files into `target` (which must exist), returning the bytes
    written. A link, device, FIFO or a name outside `target` raises UnsafeArchive naming the member; so does
    the archive growing past `max_bytes`. Works on a stream (`mode="r|*"`): members are read in order once."""
    written = 0
    root = target.resolve()
    for member in archive:
        path = member_path(member.name, target)
        if member.isdir():
            _inside(path, root, member.name).mkdir(parents=True, exist_ok=True)
            continue
        if not member.isfile():
            kind = "link" if member.issym() or member.islnk() else "special file"
            raise UnsafeArchive(f"archive member {member.name!r} is a {kind}; a data archive holds files only")
        if written + member.size > max_bytes:
            raise UnsafeArchive(_over_cap(max_bytes))
        path.parent.mkdir(parents=True, exist_ok=True)
        source = archive.extractfile(member)
        assert source is not None  # a regular file always has contents
        with source:
            written += _write_new(_inside(path, root, member.name), source, max_bytes - written, member.name)
    return written


def _inside(path: Path, root: Path, name: str) -> Path:
    """`path` once its resolved parent is checked to lie under `root`. The archive can make no link, but the
    folder a caller passes may hold one already, and `O_NOFOLLOW` guards only the last component."""
    if not path.parent.resolve().is_relative_to(root):
        raise UnsafeArchive(f"archive member {name!r} points outside the data folder")
    return path


def _write_new(path: Path, source: IO[bytes], budget: int, name: str) -> int:
    """Copy `source` into a file that must not exist yet (no overwrite through a link), at most `budget` bytes."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    try:
        descriptor = os.open(path, flags, 0o644)
    except FileExistsError:
        raise UnsafeArchive(f"archive member {name!r} appears twice") from None
    written = 0
    with os.fdopen(descriptor, "wb") as out:
        while chunk := source.read(1 << 20):
            written += len(chunk)
            if written > budget:
                raise UnsafeArchive(_over_cap(written))
            out.write(chunk)
    return written


def _over_cap(max_bytes: int) -> str:
    return (
        f"the archive unpacks to more than {max_bytes / GB:.2f} GB; if that is right, raise the cap with --data-max-gb"
    )


def copy_folder(source: Path, destination: Path) -> None:
    """Copy a local folder's files and folders into `destination` (created), keeping their permission bits
    (never widened). A link to a file inside `source` is copied as that file; a link out of `source`, to a
    folder, or dangling, and a device, FIFO or socket, raise UnsafeArchive naming it."""
    root = source.resolve()
    destination.mkdir(parents=True)
    folder_modes = []
    for folder, folders, files in os.walk(root, followlinks=False):
        for name in [*folders, *files]:
            origin = Path(folder) / name
            copy = destination / origin.relative_to(root)
            if (mode := _copy_entry(origin, copy, root)) is not None:
                folder_modes.append((copy, mode))
    for copy, mode in reversed(folder_modes):  # last, so that a read-only folder of the source can be filled
        os.chmod(copy, mode)


def _copy_entry(origin: Path, copy: Path, root: Path) -> int | None:
    """Copy one entry; a folder is made and its permission bits returned, to be set once it is filled."""
    mode = os.lstat(origin).st_mode
    if stat.S_ISLNK(mode):
        resolved = origin.resolve()
        if not resolved.is_relative_to(root) or not resolved.is_file():
            raise UnsafeArchive(f"{origin} is a link to {resolved}, outside the data source or not a file")
        mode = os.stat(resolved).st_mode
        origin = resolved
    if stat.S_ISDIR(mode):
        copy.mkdir()
        return stat.S_IMODE(mode) & 0o777
    if stat.S_ISREG(mode):
        with origin.open("rb") as source:
            descriptor = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(descriptor, "wb") as out:
                shutil.copyfileobj(source, out, 1 << 20)
        os.chmod(copy, stat.S_IMODE(mode) & 0o777)
        return None
    raise UnsafeArchive(f"{origin} is a device, FIFO or socket; a data source holds files and folders only")
