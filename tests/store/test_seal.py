"""reslab's seal over Ray Tune's state files (store/seal.py), on a real folder: what a restore would accept."""

from __future__ import annotations

from pathlib import Path

import pytest

from reslab.store.seal import SEAL_FOLDER, SealBroken, restore_sealed, seal_files, verified_state


@pytest.fixture(autouse=True)
def own_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    key = tmp_path / "keys" / "state.key"
    monkeypatch.setenv("RESLAB_STATE_KEY", str(key))
    return key


def experiment(tmp_path: Path, name: str = "study-smoke") -> str:
    folder = tmp_path / "storage" / name
    folder.mkdir(parents=True)
    return str(folder)


def test_the_sealed_state_is_put_back_over_a_cut_short_or_planted_file(tmp_path: Path, own_key: Path) -> None:
    path = experiment(tmp_path)
    seal_files(path, {"tuner.pkl": b"tuner", "experiment_state-1.json": b'{"a": 1}'})
    seal_files(path, {"experiment_state-1.json": b'{"a": 2}'})  # a later save replaces that file only
    assert own_key.stat().st_mode & 0o777 == 0o600
    Path(path, "tuner.pkl").write_bytes(b"planted")
    Path(path, "experiment_state-1.json").write_bytes(b'{"a"')  # cut short
    Path(path, "searcher-state-1.pkl").write_bytes(b"planted")  # a state file reslab never sealed
    Path(path, "summary.md").write_text("kept")  # not Tune's state: left alone
    state = verified_state(path)
    assert state == {"tuner.pkl": b"tuner", "experiment_state-1.json": b'{"a": 2}'}
    assert restore_sealed(path, state) == ["experiment_state-1.json", "searcher-state-1.pkl", "tuner.pkl"]
    assert sorted(p.name for p in Path(path).iterdir() if p.is_file()) == [
        "experiment_state-1.json", "summary.md", "tuner.pkl",
    ]  # fmt: skip
    assert Path(path, "experiment_state-1.json").read_bytes() == b'{"a": 2}'


def test_a_seal_cut_short_by_a_full_disk_leaves_the_previous_complete_one(tmp_path: Path) -> None:
    path = experiment(tmp_path)
    seal_files(path, {"tuner.pkl": b"tuner", "experiment_state-1.json": b"one"})
    # the disk filled while the next copy was written: the copy exists (cut short), the manifest was not moved
    (Path(path) / SEAL_FOLDER / "2").mkdir()
    (Path(path) / SEAL_FOLDER / "2" / "experiment_state-1.json").write_bytes(b"tw")
    assert verified_state(path)["experiment_state-1.json"] == b"one"
    for _ in range(5):  # old copies are retired as saves go on; the one holding tuner.pkl stays
        seal_files(path, {"experiment_state-1.json": b"later"})
    assert sorted(p.name for p in (Path(path) / SEAL_FOLDER).iterdir()) == ["1", "5", "6", "manifest.json"]
    assert verified_state(path) == {"tuner.pkl": b"tuner", "experiment_state-1.json": b"later"}


@pytest.mark.parametrize("fault", ["altered copy", "copy of another experiment", "other machine's key", "no key"])
def test_a_seal_that_fails_its_check_is_refused_naming_why(tmp_path: Path, own_key: Path, fault: str) -> None:
    path, other = experiment(tmp_path), experiment(tmp_path, "other-smoke")
    seal_files(path, {"tuner.pkl": b"tuner"})
    seal_files(other, {"tuner.pkl": b"other"})
    copy = Path(path) / SEAL_FOLDER / "1" / "tuner.pkl"
    if fault == "altered copy":
        copy.write_bytes(b"payload")
        expected = "sealed copy of tuner.pkl was altered or cut short"
    elif fault == "copy of another experiment":  # a copy (and manifest) moved from a study the attacker ran
        for name in ("manifest.json", "1/tuner.pkl"):
            (Path(path) / SEAL_FOLDER / name).write_bytes((Path(other) / SEAL_FOLDER / name).read_bytes())
        expected = "sealed copy of tuner.pkl was altered or cut short"
    elif fault == "other machine's key":
        own_key.write_bytes(b"k" * 32)
        expected = "sealed copy of tuner.pkl was altered or cut short"
    else:
        own_key.unlink()
        expected = f"sealed with a key this machine does not have ({own_key}): copy that file"
    with pytest.raises(SealBroken) as refused:
        verified_state(path)
    way_on = "$RESLAB_STATE_KEY" if fault == "no key" else "another --storage"
    assert expected in str(refused.value) and way_on in str(refused.value)


def test_a_state_reslab_never_sealed_is_refused(tmp_path: Path) -> None:
    path = experiment(tmp_path)
    Path(path, "tuner.pkl").write_bytes(b"from an earlier reslab")
    with pytest.raises(SealBroken, match=r"reslab did not seal .* into another --storage"):
        verified_state(path)
