"""Files beside a study's Ray Tune experiment (grid.json, launch.json, the summaries): written and read the
same way in a local folder, on NFS or in a bucket (s3://...), through pyarrow's filesystems as Ray uses."""

from __future__ import annotations

import os
from pathlib import Path


def is_cloud_uri(folder: str | Path) -> bool:
    """A folder in object storage (s3://, gs://, ...), not on this machine's filesystem."""
    return "://" in str(folder) and not str(folder).startswith("file://")


def filesystem(uri: str):
    import pyarrow.fs

    return pyarrow.fs.FileSystem.from_uri(uri)


def write_text(folder: str, name: str, text: str) -> None:
    fs, path = filesystem(folder)
    fs.create_dir(path, recursive=True)
    with fs.open_output_stream(f"{path}/{name}") as out:
        out.write(text.encode())


def read_text(folder: str, name: str) -> str | None:
    import pyarrow.fs

    fs, path = filesystem(folder)
    if fs.get_file_info(f"{path}/{name}").type == pyarrow.fs.FileType.NotFound:
        return None
    with fs.open_input_stream(f"{path}/{name}") as stream:
        return stream.read().decode()


def delete_file(folder: str, name: str) -> None:
    fs, path = filesystem(folder)
    fs.delete_file(f"{path}/{name}")


def storage_uri(storage: str | os.PathLike) -> str:
    text = str(storage)
    return text if "://" in text else str(Path(text).resolve())
