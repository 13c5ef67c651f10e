"""Data sources stay in their place: crafted archives and folders cannot write or read outside the data folder."""

from __future__ import annotations

import io
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from reslab.data import DatasetNotFoundError, check_data_dir
from reslab.data.archive import UnsafeArchive, default_cap, extract_tar
from reslab.data.fetch import fetch_dataset

CAP = 10_000_000


def _add(tar: tarfile.TarFile, name: str, *, kind: bytes = tarfile.REGTYPE, link: str = "", data: bytes = b"") -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, len(data) if kind == tarfile.REGTYPE else 0
    info.mode = 0o777 if kind == tarfile.DIRTYPE else 0o644
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def link_chain_archive(path: Path, extraction_dir: Path) -> None:
    """CVE-2025-4517 as CPython's own regression test builds it: a chain of directory links long enough that
    `os.path.realpath` stops resolving, a link through it to the folder above the extraction folder, a hard link
    to `flag` there, a file written through that hard link and a new file beside it."""
    steps = "abcdefghijklmnop"
    max_path = os.pathconf(extraction_dir.parent, "PC_PATH_MAX")
    component = "d" * ((max_path - len(str(extraction_dir)) - 1) // (len(steps) + 1))
    with tarfile.open(path, "w") as tar:
        prefix = ""
        for step in steps:
            _add(tar, os.path.join(prefix, component), kind=tarfile.DIRTYPE)
            _add(tar, os.path.join(prefix, step), kind=tarfile.SYMTYPE, link=component)
            prefix = os.path.join(prefix, component)
        linkpath = os.path.join(*steps, "l" * 254)
        _add(tar, linkpath, kind=tarfile.SYMTYPE, link=os.path.join(*[".."] * len(steps)))
        _add(tar, "escape", kind=tarfile.SYMTYPE, link=os.path.join(linkpath, ".."))
        _add(tar, "flaglink", kind=tarfile.LNKTYPE, link=os.path.join("escape", "flag"))
        _add(tar, "flaglink", data=b"overwritten")
        _add(tar, "escape/newfile", data=b"new")


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_the_link_chain_archive_escapes_pythons_data_filter_here_but_not_reslab(tmp_path: Path) -> None:
    """The archive is a real exploit on this interpreter (where its tarfile predates the fix), and fetching it as
    a --data-source writes nothing anywhere: the message names the first link member."""
    probe_home = tmp_path / "probe"
    (probe_home / "dest").mkdir(parents=True)
    (probe_home / "flag").write_bytes(b"original")
    link_chain_archive(tmp_path / "chain.tar", probe_home / "dest")
    python_check = subprocess.run(  # in a child: the exploit writes files, and only inside probe_home
        [sys.executable, "-c", f"import tarfile; tarfile.open({str(tmp_path / 'chain.tar')!r}).extractall("
         f"{str(probe_home / 'dest')!r}, filter='data')"],
        capture_output=True, text=True,
    )  # fmt: skip
    escaped = (probe_home / "flag").read_bytes() != b"original" or (probe_home / "newfile").exists()
    if sys.version_info < (3, 11, 13):
        assert escaped, f"the crafted archive should get past tarfile's filter on {sys.version}: {python_check}"

    node = tmp_path / "node"
    node.mkdir()
    (node / "flag").write_bytes(b"original")
    link_chain_archive(tmp_path / "node-chain.tar", node / "cifar10")
    with pytest.raises(DatasetNotFoundError, match=r"archive member 'a' is a link; a data archive holds files only"):
        fetch_dataset(str(tmp_path / "node-chain.tar"), str(node / "cifar10"), CAP)
    assert _tree(node) == {"flag": b"original", ".cifar10.lock": b""}  # the flag kept, no new file, no partial
    assert sorted(p.name for p in node.iterdir()) == [".cifar10.lock", "flag"]


@pytest.mark.parametrize(
    ("name", "kind", "link", "message"),
    [
        ("../outside", tarfile.REGTYPE, "", "points outside the data folder"),
        ("/etc/reslab-probe", tarfile.REGTYPE, "", "points outside the data folder"),
        ("a/../../outside", tarfile.REGTYPE, "", "points outside the data folder"),
        ("etc", tarfile.SYMTYPE, "/etc", "is a link"),
        ("shadow", tarfile.LNKTYPE, "/etc/shadow", "is a link"),
        ("null", tarfile.CHRTYPE, "", "is a special file"),
        ("fifo", tarfile.FIFOTYPE, "", "is a special file"),
    ],
)
def test_every_member_that_is_not_a_file_or_folder_inside_the_target_is_refused(
    tmp_path: Path, name: str, kind: bytes, link: str, message: str
) -> None:
    archive = tmp_path / "crafted.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        _add(tar, "cifar-10-batches-py", kind=tarfile.DIRTYPE)
        _add(tar, name, kind=kind, link=link, data=b"x" if kind == tarfile.REGTYPE else b"")
    with pytest.raises(DatasetNotFoundError, match=message):
        fetch_dataset(str(archive), str(tmp_path / "node" / "data"), CAP)
    assert sorted(p.name for p in (tmp_path / "node").iterdir()) == [".data.lock"]
    assert not (tmp_path / "outside").exists()


def test_an_archive_that_unpacks_past_its_cap_is_refused_and_the_cap_is_a_few_times_the_dataset(tmp_path) -> None:
    archive = tmp_path / "bomb.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:  # 1 KB of zeros per 1 byte or so: 3 MB in a few KB
        for i in range(3):
            _add(tar, f"zeros-{i}", data=bytes(1_000_000))
    assert archive.stat().st_size < 20_000
    with pytest.raises(DatasetNotFoundError, match=r"unpacks to more than 0\.00 GB.*--data-max-gb"):
        fetch_dataset(str(archive), str(tmp_path / "small"), 2_500_000)
    assert not (tmp_path / "small").exists()
    assert fetch_dataset(str(archive), str(tmp_path / "large"), 3_000_000) is True  # exactly at the cap: fine
    assert sorted(_tree(tmp_path / "large")) == ["zeros-0", "zeros-1", "zeros-2"]
    (tmp_path / "direct").mkdir()
    with tarfile.open(archive) as tar, pytest.raises(UnsafeArchive, match="more than"):  # the second member passes it
        extract_tar(tar, tmp_path / "direct", 1_500_000)
    assert default_cap("cifar10") == 744_000_000 and default_cap("imagenet") == 588_000_000_000


def test_a_folder_source_copies_no_link_out_of_itself_and_keeps_its_modes(cifar_subset: Path, tmp_path) -> None:
    source = tmp_path / "source" / "cifar-10-batches-py"
    source.mkdir(parents=True)
    for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"):
        (source / name).write_bytes((cifar_subset / name).read_bytes())
    (source / "batches.meta").write_bytes((cifar_subset / "batches.meta").read_bytes())
    (source / "private").write_text("key")
    (source / "private").chmod(0o600)
    (source / "alias").symlink_to("batches.meta")  # a link to a file inside: copied as that file
    target = tmp_path / "node" / "cifar10"
    assert fetch_dataset(str(tmp_path / "source"), str(target), CAP) is True
    check_data_dir("cifar10", target)
    copied = target / "cifar-10-batches-py"
    assert stat.S_IMODE((copied / "private").stat().st_mode) == 0o600  # not widened
    assert not (copied / "alias").is_symlink()
    assert (copied / "alias").read_bytes() == (source / "batches.meta").read_bytes()

    secret = tmp_path / "secret"
    secret.write_text("outside")
    secret.chmod(0o600)
    for name, outside in (("etc", Path("/etc")), ("key", secret), ("dangling", tmp_path / "nothing")):
        (source / name).symlink_to(outside)
        elsewhere = tmp_path / f"node-{name}" / "cifar10"
        with pytest.raises(DatasetNotFoundError, match=f"{source / name} is a link to .*outside the data source"):
            fetch_dataset(str(tmp_path / "source"), str(elsewhere), CAP)
        assert list(elsewhere.parent.iterdir()) == [elsewhere.parent / ".cifar10.lock"]  # nothing copied
        (source / name).unlink()
    os.mkfifo(source / "pipe")
    with pytest.raises(DatasetNotFoundError, match="is a device, FIFO or socket"):
        fetch_dataset(str(tmp_path / "source"), str(tmp_path / "node-fifo" / "cifar10"), CAP)
