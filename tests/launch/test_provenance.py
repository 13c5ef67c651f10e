"""What a launch records about the source it ran: the commit, whether the tree differed from it, and how."""

from __future__ import annotations

import subprocess
from pathlib import Path

from reslab.launch.provenance import source_state


def git(folder: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True)


def test_the_commit_a_dirty_flag_and_a_hash_that_names_the_edit(tmp_path: Path) -> None:
    repo = tmp_path / "checkout"
    (repo / "platform" / "reslab").mkdir(parents=True)
    source = repo / "platform" / "reslab"
    (source / "net.py").write_text("depth = 20\n")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "first")
    clean = source_state(source)
    assert len(clean["git_commit"]) == 40 and clean["git_dirty"] == "false" and "git_diff_sha256" not in clean

    (source / "net.py").write_text("depth = 56\n")  # an uncommitted edit
    edited = source_state(source)
    assert edited["git_commit"] == clean["git_commit"] and edited["git_dirty"] == "true"
    assert source_state(source) == edited  # the same edit, the same hash
    (source / "net.py").write_text("depth = 110\n")
    assert source_state(source)["git_diff_sha256"] != edited["git_diff_sha256"]
    (source / "net.py").write_text("depth = 20\n")
    (repo / "studies.py").write_text("new study\n")  # a new file anywhere in the checkout counts too
    assert source_state(source)["git_dirty"] == "true"


def test_outside_a_checkout_the_commit_is_unknown(tmp_path: Path) -> None:
    assert source_state(tmp_path) == {"git_commit": "unknown", "git_dirty": "unknown"}
