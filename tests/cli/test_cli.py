"""The `reslab` console script, run as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from reslab.bench import format_results, run_benchmark


def reslab(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("reslab")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "reslab.cli"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=timeout, check=False)


def test_train_json_prints_one_object_on_the_last_line(tmp_path: Path) -> None:
    done = reslab(
        "train",
        "--model",
        "cifar_resnet20",
        "--dataset",
        "synthetic",
        "--iterations",
        "6",
        "--eval-every",
        "3",
        "--batch-size",
        "32",
        "--out",
        str(tmp_path / "run"),
        "--json",
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["iterations"] == 6
    for key in ("train_error", "test_error", "images_per_second"):
        assert key in result and result[key] >= 0
    assert "iter       3/6" in done.stderr and "test err" in done.stderr  # progress goes to stderr
    assert "\r" not in done.stderr and "6/6 [" not in done.stderr  # no progress bar off a terminal
    assert json.loads((tmp_path / "run" / "config.json").read_text())["recipe"]["iterations"] == 6
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 2


def test_train_on_a_terminal_shows_a_bar_with_loss_error_speed_and_time_left() -> None:
    """`reslab train` in a real pseudo-terminal (160 columns): tqdm's bar with the iteration, the latest
    batch's loss and error, the last test error, img/s and the time left, the report lines above it."""
    import fcntl
    import os
    import pty
    import re
    import select
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    command = ["train", "--model", "cifar_resnet20", "--dataset", "synthetic", "--iterations", "40"]
    command += ["--eval-every", "20", "--batch-size", "16"]
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("reslab")), *command],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=follower, close_fds=True,
    )  # fmt: skip
    os.close(follower)
    shown = b""
    while True:  # read as it comes: a full pseudo-terminal would block the process
        ready, _, _ = select.select([leader], [], [], 120)
        assert ready, "reslab train went silent for 2 minutes"
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the process closed its end
            break
        if not chunk:
            break
        shown += chunk
    os.close(leader)
    assert process.wait(timeout=60) == 0, shown.decode(errors="replace")[-3000:]
    text = shown.decode(errors="replace")
    assert "iter      20/40" in text and "iter      40/40" in text  # the report lines, as without a bar
    final = re.search(r"iter      40/40  train err .*test err +(\d+\.\d\d)%", text)
    bar = rf"40/40 \[\d\d:\d\d<00:00, loss \d+\.\d{{3}}  err \d+\.\d%  test err {final[1]}%  [1-9]\d* img/s\]"
    assert re.search(bar, text), text[-2000:]  # the last test error, from the report just written
    assert re.search(r"\d+/40 \[\d\d:\d\d<\d\d:\d\d, loss", text)  # the time left while it runs


def test_resume_continues_from_the_checkpoint(tmp_path: Path) -> None:
    common = [
        "train",
        "--model",
        "cifar_resnet20",
        "--dataset",
        "synthetic",
        "--eval-every",
        "3",
        "--batch-size",
        "32",
        "--out",
        str(tmp_path),
        "--json",
    ]
    assert reslab(*common, "--iterations", "6").returncode == 0
    missing = reslab(*common[:-3], "--out", str(tmp_path / "empty"), "--resume", "--iterations", "6")
    assert missing.returncode == 2 and "--resume needs a checkpoint" in missing.stderr
    done = reslab(*common, "--iterations", "6", "--resume")
    assert done.returncode == 0 and "resumed from" in done.stderr and "at iteration 6" in done.stderr

    # a run of another net, shortcut, depth, data or seed is not continued, and config.json still names the first
    before = (tmp_path / "config.json").read_text(), (tmp_path / "checkpoint.pt").read_bytes()
    plain = [*common[:2], "cifar_plain20", *common[3:]]  # the same state-dict keys as ResNet-20-A
    others = {
        "model 'cifar_resnet20' there, 'cifar_plain20' asked": plain,
        "shortcut 'A' there, 'B' asked": [*common, "--shortcut", "B"],
        "seed 0 there, 3 asked": [*common, "--seed", "3"],
        "dataset 'synthetic' there, 'cifar10' asked": [*common[:4], "cifar10", *common[5:], "--data-dir", "x"],
        "model 'cifar_resnet20' there, 'cifar_resnet' asked; depth None there, 32 asked": [
            *common[:2], "cifar_resnet", *common[3:], "--depth", "32"
        ],
    }  # fmt: skip
    for message, args in others.items():
        refused = reslab(*args, "--iterations", "6", "--resume")
        assert refused.returncode == 2 and message in refused.stderr, refused.stderr
        assert "is another run" in refused.stderr and "Traceback" not in refused.stderr
    assert ((tmp_path / "config.json").read_text(), (tmp_path / "checkpoint.pt").read_bytes()) == before


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--model", "resnet35"], "unknown model 'resnet35'; valid models: cifar_resnet"),
        (["--model", "cifar_resnet20", "--shortcut", "D", "--dataset", "synthetic"], "valid: A, B, C"),
        (["--model", "cifar_resnet", "--depth", "21", "--dataset", "synthetic"], "6n+2"),
        (["--model", "cifar_resnet20", "--data-dir", "/nonexistent/cifar"], "CIFAR-10 not found in /nonexistent"),
    ],
)
def test_bad_input_gives_one_clear_line_and_exit_2(args: list[str], needle: str) -> None:
    done = reslab("train", *args, "--iterations", "2")
    assert done.returncode == 2
    assert needle in done.stderr and "Traceback" not in done.stderr


def test_models_lists_the_zoo_with_sizes() -> None:
    done = reslab("models")
    assert done.returncode == 0
    assert "cifar_resnet20" in done.stdout and "269,722" in done.stdout and "resnet152" in done.stdout


def test_bench_measures_both_loops_and_their_ratio() -> None:
    (result,) = run_benchmark(["cifar_resnet20"], iterations=2, batch_size=16, reference_workers=0, num_images=64)
    assert result.precision == "auto" and result.precision_used.startswith("auto: ")
    assert f"reslab's precision: {result.precision_used}" in format_results([result])
    assert result.reslab_images_per_second > 0 and result.reference_images_per_second > 0
    assert 0.05 < result.speedup < 50  # one loop that did nothing, or timed nothing, would be far outside
    assert 50 < result.reslab_peak_memory_mb < 64 * 1024  # MB (torch alone is > 50), not bytes or KB
    with pytest.raises(ValueError, match="unknown model"):
        run_benchmark(["cifar_resnet21"], iterations=1)


@pytest.mark.slow
def test_cli_trains_on_the_real_subset(cifar_subset: Path) -> None:
    done = reslab(
        "train", "--model", "cifar_resnet20", "--data-dir", str(cifar_subset), "--iterations", "200", "--json"
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print("real-subset result:", result)
    assert result["test_error"] < 0.70


@pytest.mark.parametrize("bad", [["--storage", "{file}/runs"], ["--resume"], ["--max-concurrent-trials", "0"]])
def test_a_study_refuses_bad_input_before_ray_starts(bad: list[str], tmp_path: Path) -> None:
    """A real study process: one message, exit 2, and Ray never started (it announces itself when it does)."""
    (tmp_path / "file").write_text("not a folder\n")
    argv = [arg.format(file=tmp_path / "file") for arg in bad]
    study = REPO / "studies" / "plain_vs_residual.py"
    done = subprocess.run(
        [sys.executable, str(study), "--storage", str(tmp_path / "runs"), *argv],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "error" in done.stderr
    assert "Ray" not in done.stdout + done.stderr, done.stderr
    assert not (tmp_path / "runs").exists()


def test_a_failing_checkpoint_write_leaves_the_previous_checkpoint_loadable(tmp_path: Path) -> None:
    """Disk full while writing a checkpoint, made real with a file-size limit (a write past it fails with EFBIG,
    as on a full disk): the previous checkpoint stays loadable, no partial file is left, and `reslab train`
    says so in one line."""
    import resource
    import signal

    common = ["train", "--model", "cifar_resnet20", "--dataset", "synthetic", "--iterations", "2", "--batch-size", "16"]
    assert reslab(*common, "--out", str(tmp_path / "run")).returncode == 0
    checkpoint = tmp_path / "run" / "checkpoint.pt"
    before = checkpoint.read_bytes()

    def small_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (len(before) // 2, len(before) // 2))

    overwrite = (
        "import sys, torch\nfrom reslab.training.checkpoint import CheckpointError, save_checkpoint\n"
        f"try:\n    save_checkpoint({str(checkpoint)!r}, {{'weights': torch.zeros({len(before)})}})\n"
        "except CheckpointError as error:\n    sys.exit(str(error))\n"
    )
    failed = subprocess.run([sys.executable, "-c", overwrite], capture_output=True, text=True, timeout=120,
                            check=False, preexec_fn=small_disk)  # fmt: skip
    assert failed.returncode == 1 and "could not write the checkpoint" in failed.stderr, failed.stderr
    assert checkpoint.read_bytes() == before and not list(checkpoint.parent.glob(".checkpoint.pt.*"))
    resumed = reslab(*common, "--out", str(tmp_path / "run"), "--resume")
    assert resumed.returncode == 0 and "at iteration 2" in resumed.stderr, resumed.stderr

    script = Path(sys.executable).with_name("reslab")
    full = subprocess.run([str(script), *common, "--out", str(tmp_path / "full")], capture_output=True, text=True,
                          timeout=300, check=False, preexec_fn=small_disk)  # fmt: skip
    assert full.returncode == 2 and "Traceback" not in full.stderr, full.stderr
    assert "could not write the checkpoint" in full.stderr and "the previous checkpoint there is intact" in full.stderr
    assert not list((tmp_path / "full").glob(".checkpoint.pt.*"))


HELP_PROBE = """
import sys
from reslab.cli import build_parser, main
commands = list(build_parser()._subparsers._group_actions[0].choices)
nested = [["models", "list"], ["models", "pull"], ["tracking", "sync"], ["study", "run"]]
for argv in [[]] + [[c] for c in commands] + nested:
    try:
        main([*argv, "--help"])
    except SystemExit as done:
        assert done.code == 0, argv
heavy = sorted(m for m in ("torch", "torchvision", "mlflow", "ray", "pandas", "streamlit") if m in sys.modules)
print(len(commands), heavy)
"""


def test_every_helpanswers_without_loading_torch_mlflow_or_ray() -> None:
    """`--help` of each command imports none of the heavy packages (an import check, not a timing)."""
    done = subprocess.run([sys.executable, "-c", HELP_PROBE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    commands, heavy = done.stdout.strip().splitlines()[-1].split(" ", 1)
    assert heavy == "[]" and int(commands) >= 7, done.stdout[-500:]


def test_version() -> None:
    from reslab import __version__

    done = subprocess.run([sys.executable, "-m", "reslab.cli", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == f"reslab {__version__}"


def test_no_cuda_graph_reaches_a_train_run_and_every_trial_of_a_study() -> None:
    """The switch off for CUDA graphs, from both commands: a runtime field, so the study's grid is unchanged."""
    from reslab.cli import build_parser
    from reslab.commands.train import _train_config
    from reslab.launch.cli import build_parser as study_parser
    from reslab.launch.cli import flagged_study
    from reslab.studies.shortcut_ablation import STUDIES
    from reslab.study.identity import grid_fingerprint

    args = build_parser().parse_args(["train", "--model", "cifar_resnet20", "--no-cuda-graph"])
    assert _train_config(args).cuda_graph is False
    assert _train_config(build_parser().parse_args(["train", "--model", "cifar_resnet20"])).cuda_graph is True
    studies = {
        flag: flagged_study(STUDIES, study_parser(*STUDIES).parse_args(flag)) for flag in [(), ("--no-cuda-graph",)]
    }
    eager, graphed = studies[("--no-cuda-graph",)].trials("smoke"), studies[()].trials("smoke")
    assert {t.config.cuda_graph for t in eager} == {False} and {t.config.cuda_graph for t in graphed} == {True}
    assert grid_fingerprint(eager, studies[()], "smoke") == grid_fingerprint(graphed, studies[()], "smoke")


def test_an_unknown_flag_is_reported_by_its_command_and_lists_answer_in_json(tmp_path: Path) -> None:
    """`reslab models list --bogus` answers with `models list`'s usage, not the top-level one; `study run
    --help` answers; study list, models list and scorecard print one JSON object per line with --json."""
    bogus = reslab("models", "list", "--bogus")
    assert bogus.returncode == 2 and bogus.stderr.startswith("usage: reslab models list")
    assert "reslab models list: error: unrecognized arguments: --bogus" in bogus.stderr
    helped = reslab("study", "run", "--help")
    assert helped.returncode == 0 and "NAME is one of `reslab study list`" in helped.stdout
    studies = [json.loads(line) for line in reslab("study", "list", "--json").stdout.splitlines()]
    assert {"plain_vs_residual", "cifar_depth"} <= {s["name"] for s in studies}
    shortcut = next(s for s in studies if s["name"] == "shortcut_ablation")
    assert shortcut["experiments"] == ["shortcut_ablation_imagenet-PROFILE", "shortcut_ablation_cifar10-PROFILE"]
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    from mlflow import MlflowClient

    client = MlflowClient(store, registry_uri=store)
    client.create_registered_model("cifar10-cifar_resnet20-A")
    client.create_model_version(
        "cifar10-cifar_resnet20-A", source=(tmp_path / "m").as_uri(), tags={"test_error": "0.1"}
    )
    client.set_registered_model_alias("cifar10-cifar_resnet20-A", "best", "1")
    (listed,) = [
        json.loads(line) for line in reslab("models", "list", "--json", "--tracking-uri", store).stdout.splitlines()
    ]
    assert listed["name"] == "cifar10-cifar_resnet20-A" and listed["aliases"] == ["best"] and listed["version"] == 1
    assert listed["test_error"] == pytest.approx(10.0) and listed["pull"].endswith(f"--tracking-uri {store}")
    assert reslab("scorecard", "--json", "--tracking-uri", store).stdout == ""  # no verdicts: no lines
    worst = reslab("models", "pull", "cifar10-cifar_resnet20-A@worst", "--out", str(tmp_path), "--tracking-uri", store)
    assert worst.returncode == 2
    assert "cifar10-cifar_resnet20-A has no alias @worst; its aliases: @best, its versions: 1" in worst.stderr
