"""Bad input, as a new user types it: one message that names the problem and what to do, exit 2, no traceback,
and nothing written — no tracking store, no experiment folder, no file beside the input.

The table runs through both command lines in this process (the same `main` the console scripts call; a
traceback would escape as an exception and fail the test); `test_cli.py` runs a few of them as real processes.
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from conftest import REPO
from reslab import cli

STUDY = REPO / "studies" / "plain_vs_residual.py"

# (command, arguments, words of the message that name the fix); {names} are the inputs the fixture makes
CASES = [
    ("reslab", "train --model resnet35", "valid models: cifar_resnet"),
    ("reslab", "train --model cifar_resnet20 --dataset synthetic --shortcut D", "valid: A, B, C"),
    ("reslab", "train --model cifar_resnet --depth 21 --dataset synthetic", "6n+2"),
    ("reslab", "train --model cifar_resnet20 --data-dir {missing}", "point --data-dir at a folder that has it"),
    ("reslab", "train --model cifar_resnet20 --data-dir {truncated}", "copy the dataset folder again"),
    ("reslab", "train --model cifar_resnet20 --dataset synthetic --device tpu", "valid: cpu, cuda, cuda:N"),
    ("reslab", "train --model cifar_resnet20 --dataset synthetic --out {broken} --resume", "remove it to start over"),
    ("reslab", "train --model cifar_resnet20 --dataset synthetic --out {file}", "name a folder"),
    ("reslab", "train --model cifar_resnet20 --dataset synthetic --iterations 0", "positive integer"),
    ("reslab", "train --model cifar_resnet20 --dataset synthetic --lr -1", "must be > 0"),
    ("reslab", "train --model cifar_resnet20 --dataset synthetic --lr inf", "must be > 0 and finite"),
    ("reslab", "train --model cifar_resnet20 --dataset synthetic --lr nan", "must be > 0 and finite"),
    ("reslab", "train --model cifar_resnet20 --dataset synthetic --seed 4294967296", "from 0 to 4294967295"),
    ("reslab", "models pull cifar10-cifar_resnet20-A --out {file}", "name a folder"),
    ("reslab", "models pull cifar10-cifar_resnet20-A --out /proc/net/model", "name a place in a folder you can"),
    ("reslab", "report plain_vs_residual-smoke --out /proc/report.html", "name a place in a folder you can write"),
    ("reslab", "report plain_vs_residual-smoke --out {file}/report.html", "is not a folder"),
    ("reslab", "models list", "a study creates it when it runs"),
    ("reslab", "models list --tracking-uri http://127.0.0.1:9", "start it (mlflow server"),
    ("reslab", "models list --tracking-uri sqlite:///{file}", "cannot be opened (file is not a database)"),
    ("reslab", "report plain_vs_residual-smoke --tracking-uri sqlite:///{file}", "pass --tracking-uri naming"),
    ("reslab", "scorecard --tracking-uri foo://bar", "valid: http(s)://HOST:PORT"),
    ("reslab", "report plain_vs_residual-smoke", "pass --tracking-uri"),
    ("reslab", "tracking sync {missing}", "not a study's experiment folder"),
    ("reslab", "bench --models cifar_resnet21 --iterations 1", "valid models"),
    ("reslab", "bench --iterations 0", "at least 1"),
    ("reslab", "dashboard --port 70000", "from 1 to 65535"),
    ("study", "--storage {file}/runs", "pass a --storage folder you can write"),
    ("study", "--profile quick", "pass --data-dir"),
    ("study", "--profile quick --data-dir {truncated}", "copy the dataset folder again"),
    ("study", "--profile quick --data-dir {missing}", "--data-dir"),
    ("study", "--max-concurrent-trials 0", "at least 1"),
    ("study", "--gpus-per-trial -1", "a share in (0, 1]"),
    ("study", "--data-parallel 0", "at least 1"),
    ("study", "--tracking-uri http://127.0.0.1:9", "pass another --tracking-uri"),
    ("study", "--tracking-uri sqllite:///typo.db", "valid: http(s)://HOST:PORT"),
    ("study", "--tracking-uri sqlite:///{file}", "cannot be opened (file is not a database)"),
    ("study", "--resume", "nothing to resume"),
    ("study", "--data-source s3://b/x", "--data-source needs --data-dir"),
    ("study", "--dataset mnist", "choose from 'cifar10', 'imagenet'"),
]


@pytest.fixture
def inputs(tmp_path: Path, cifar_subset: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A working folder (the default store and --storage would land here) with one bad input of each kind."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    truncated = tmp_path / "truncated"
    shutil.copytree(cifar_subset, truncated)
    for path in truncated.iterdir():
        path.chmod(0o644)
    with (truncated / "data_batch_3").open("r+b") as f:
        f.truncate(100_000)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "checkpoint.pt").write_bytes(b"PK\x03\x04 not a checkpoint" * 40)
    (tmp_path / "file").write_text("a file where a folder belongs\n")
    return {"truncated": str(truncated), "broken": "broken", "file": "file", "missing": str(tmp_path / "nowhere")}


def run(command: str, argv: list[str]) -> int:
    """Exit status of one command line run here; argparse's own refusals exit through SystemExit."""
    try:
        if command == "reslab":
            return cli.main(argv)
        spec = importlib.util.spec_from_file_location("plain_vs_residual", STUDY)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.main(module.CIFAR, module.IMAGENET, argv=argv)
    except SystemExit as done:
        return int(done.code or 0)


def snapshot(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize(("command", "arguments", "fix"), CASES, ids=[f"{c} {a}" for c, a, _ in CASES])
def test_bad_input_is_one_message_naming_the_fix_and_writes_nothing(
    command: str, arguments: str, fix: str, inputs: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(Path.cwd())
    status = run(command, arguments.format(**inputs).split())
    said = capsys.readouterr().err
    message = [line for line in said.splitlines() if "error" in line]
    assert status == 2, said
    assert "Traceback" not in said and len(message) == 1, said
    assert fix in said, said
    assert snapshot(Path.cwd()) == before  # no store, no experiment folder, no partial file


def test_the_table_covers_at_least_fifteen_kinds_of_bad_input() -> None:
    assert len(CASES) >= 15 and len({c for c, _, _ in CASES}) == 2


def test_a_dashboard_port_in_use_is_refused_before_streamlit_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    from reslab.tracking import prepare_store

    store = prepare_store(f"sqlite:///{tmp_path / 'mlflow.db'}")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert run("reslab", ["dashboard", "--tracking-uri", store, "--port", str(port)]) == 2
    said = capsys.readouterr().err.strip().splitlines()
    assert said == [f"reslab: error: --port {port} on 127.0.0.1 is not available (Address already in use); "
                    "pass another --port"]  # fmt: skip
