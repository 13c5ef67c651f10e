"""The `reslab` command: train a net, benchmark the loop, list the model zoo."""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .arguments import port_number, positive_int
from .logs import configure_logging

if TYPE_CHECKING:  # torch and the rest load in the command that needs them: `--help` answers at once
    from .training import Report, TrainConfig


def user_errors() -> tuple[type[BaseException], ...]:
    """The errors a command reports as one message (exit 2): bad input, a store or data that is not there.
    reslab's own kinds only from the modules the command loaded (one not loaded raised nothing)."""
    errors: list[type[BaseException]] = [ValueError, LookupError, ConnectionError]
    if "reslab.data" in sys.modules:
        from .data import DatasetNotFoundError

        errors.append(DatasetNotFoundError)
    if "reslab.training" in sys.modules:
        from .training import CheckpointError, TrainingDiverged

        errors += [CheckpointError, TrainingDiverged]
    return tuple(errors)


def _add_train_parser(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("train", help="train one net with the paper's recipe (shortened to --iterations)")
    p.add_argument("--model", required=True, help="registered model name, e.g. cifar_resnet20 (see `reslab models`)")
    p.add_argument("--dataset", choices=["cifar10", "imagenet", "synthetic"], help="default: from the model family")
    p.add_argument("--data-dir", help="folder with the CIFAR-10 batches or ImageNet train/ and val/")
    p.add_argument("--download", action="store_true", help="download CIFAR-10 into --data-dir if missing")
    p.add_argument("--shortcut", help="shortcut option A, B or C (default: A for CIFAR, B for ImageNet)")
    p.add_argument("--depth", type=int, help="depth for the any-depth builders cifar_resnet / cifar_plain")
    p.add_argument("--iterations", type=int, help="SGD steps; milestones keep their fractions (default: the paper's)")
    p.add_argument("--eval-every", type=int, help="iterations between reports (default: ten reports)")
    p.add_argument("--batch-size", type=int, help="images per step (default: the paper's 128 / 256)")
    p.add_argument("--lr", type=float, help="base learning rate (default: the paper's 0.1)")
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation, batch order and augmentation")
    p.add_argument(
        "--validation",
        action="store_true",
        help="hold out 10%% of the training set (the paper's 45k/5k) and report its error beside the test error",
    )
    p.add_argument("--device", help="cpu, cuda, cuda:N (default: CUDA when available)")
    p.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16"],
        default="auto",
        help="auto: bf16 autocast where the hardware has native bf16, else fp32",
    )
    p.add_argument("--out", type=Path, help="run folder: config.json, metrics.jsonl, checkpoint.pt")
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    p.add_argument("--json", action="store_true", help="print the final result as one JSON line on stdout")


def _train_config(args: argparse.Namespace) -> TrainConfig:
    from .models import get_model_info
    from .training import TrainConfig, paper_recipe

    family = get_model_info(args.model).family  # an unknown name raises listing the valid ones
    dataset = args.dataset or ("imagenet" if family == "imagenet" else "cifar10")
    recipe = paper_recipe(args.model, args.depth)
    if args.iterations is not None:
        recipe = recipe.scaled(args.iterations)
    overrides = {"batch_size": args.batch_size, "lr": args.lr}
    recipe = replace(recipe, **{k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(
        model=args.model,
        recipe=recipe,
        dataset=dataset,
        data_dir=args.data_dir,
        shortcut=args.shortcut,
        depth=args.depth,
        seed=args.seed,
        eval_every=args.eval_every,
        download=args.download,
        validation_fraction=0.1 if args.validation else None,
        device=args.device,
        precision=args.precision,
    )


def format_report(report: Report, iterations: int) -> str:
    """One progress line, errors in percent as the paper gives them."""
    return (
        f"iter {report.iteration:>7}/{iterations}  train err {100 * report.train_error:6.2f}%  "
        f"test err {100 * report.test_error:6.2f}%  train loss {report.train_loss:.4f}  "
        f"lr {report.lr:.4g}  {report.images_per_second:8.1f} img/s"
        + (f"  val err {100 * report.validation_error:6.2f}%" if report.validation_error is not None else "")
        + (f"  test top-5 {100 * report.test_error_top5:6.2f}%" if report.test_error_top5 is not None else "")
    )


RESUME_FIELDS = ("model", "shortcut", "depth", "dataset", "data_dir", "seed")  # what makes a run this run


def checked_resume(checkpoint: Path, config: TrainConfig) -> dict[str, Any]:
    """The checkpoint's state, once its config names the same net, data and seed as `config`; else one
    CheckpointError naming every difference (a ResNet-20-A checkpoint has the state-dict keys of plain-20, so
    loading alone would not notice)."""
    from .models import get_model_info
    from .training import CheckpointError
    from .training.checkpoint import load_checkpoint

    state = load_checkpoint(checkpoint)
    saved = state.get("config")
    if not isinstance(saved, dict):
        raise CheckpointError(f"{checkpoint} carries no config; cannot tell which run it continues")

    def resolved(values: dict[str, Any]) -> dict[str, Any]:
        try:
            shortcut = get_model_info(values.get("model", "")).shortcut_for(values.get("shortcut"))
        except (KeyError, ValueError):
            shortcut = values.get("shortcut")
        folder = values.get("data_dir")
        data_dir = str(Path(folder).expanduser().resolve()) if folder else None
        return {**{k: values.get(k) for k in RESUME_FIELDS}, "shortcut": shortcut, "data_dir": data_dir}

    ours, theirs = resolved(config.to_dict()), resolved(saved)
    differences = [f"{k} {theirs[k]!r} there, {ours[k]!r} asked" for k in RESUME_FIELDS if ours[k] != theirs[k]]
    if differences:
        raise CheckpointError(
            f"{checkpoint} is another run: {'; '.join(differences)}. Resume with the same settings, or train "
            "into another --out"
        )
    return state


def run_train(args: argparse.Namespace) -> int:
    from .training import CheckpointError, build_trainer
    from .training.progress import TrainingProgress

    config = _train_config(args).validate()
    if args.out and args.out.exists() and not args.out.is_dir():
        raise ValueError(f"--out {args.out} is a file; name a folder for config.json, metrics.jsonl, checkpoint.pt")
    checkpoint = args.out / "checkpoint.pt" if args.out else None
    if args.resume and (checkpoint is None or not checkpoint.is_file()):
        raise CheckpointError(f"--resume needs a checkpoint at {checkpoint or '--out DIR/checkpoint.pt'}")
    state = checked_resume(checkpoint, config) if args.resume else None  # before building: a mismatch costs nothing
    trainer = build_trainer(config)
    if state is not None:
        try:
            trainer.load_state_dict(state)
        except (KeyError, RuntimeError) as error:  # a checkpoint edited by hand: its weights fit no such net
            raise CheckpointError(f"{checkpoint} does not fit {config.model}: {str(error).splitlines()[0]}") from None
        print(f"resumed from {checkpoint} at iteration {trainer.iteration}", file=sys.stderr)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    print(
        f"training {config.model} on {config.dataset} ({trainer.device}) for {config.recipe.iterations} iterations",
        file=sys.stderr,
    )

    progress = TrainingProgress(config.recipe.iterations, start=trainer.iteration)

    def on_report(report: Report) -> None:
        progress.write(format_report(report, config.recipe.iterations), test_error=report.test_error)
        if args.out:
            with (args.out / "metrics.jsonl").open("a") as f:
                f.write(json.dumps(report.as_dict()) + "\n")
            trainer.save(checkpoint, config=config.to_dict())

    try:
        final = trainer.run(on_report, on_step=progress.step)
    finally:
        progress.close()
    if args.json and final is not None:
        print(json.dumps({**final.as_dict(), "iterations": final.iteration, "model": config.model}))
    return 0


def run_models(args: argparse.Namespace) -> int:
    return {"zoo": run_zoo, "list": run_registered, "pull": run_pull}[args.action or "zoo"](args)


def run_zoo(_: argparse.Namespace) -> int:
    from .models import complexity, create_model, get_model_info, list_models

    print(f"{'model':<18} {'family':<9} {'shortcut':<9} {'params':>12} {'mult-adds':>10}")
    for name in list_models():
        info = get_model_info(name)
        size = complexity(create_model(name), info.input_size)
        print(
            f"{name:<18} {info.family:<9} {info.default_shortcut or '-':<9} {size.parameters:>12,} "
            f"{size.multiply_adds / 1e9:>9.3f}G"
        )
    return 0


def run_registered(args: argparse.Namespace) -> int:
    """The registry: every model with its versions, aliases and the test error each version was registered with."""
    from mlflow import MlflowClient

    from .tracking.catalog import registered_versions
    from .tracking.store import existing_store

    uri = existing_store(args.tracking_uri)
    versions = registered_versions(MlflowClient(uri, registry_uri=uri))
    if not versions:
        print(f"no registered models in {uri}; a finished study registers the best net of each configuration")
        return 0
    print(f"{'name':<36} {'version':>7}  {'aliases':<10} {'test err':>8}  study")
    for v in versions:
        shown = "       -" if math.isnan(v.test_error) else f"{100 * v.test_error:7.2f}%"
        print(f"{v.name:<36} {v.version:>7}  {','.join(v.aliases) or '-':<10} {shown}  {v.study or '-'}")
    return 0


def run_pull(args: argparse.Namespace) -> int:
    from .tracking.registry import download

    folder = download(args.name, args.out, args.tracking_uri)
    print(f"pulled {args.name} into {folder}")
    print(f"load it with: reslab.load_model({str(folder)!r})")
    return 0


def run_tracking_sync(args: argparse.Namespace) -> int:
    """Deliver a study's results to MLflow after the store was away, then register its best nets."""
    from .store.layout import GRID_RECORD
    from .store.storage import is_cloud_uri
    from .tracking import check_reachable, prepare_store, resolve_tracking_uri
    from .tracking.registry import register_study_models
    from .tracking.sync import local_copy, sync_experiment

    def check(folder: Path) -> None:
        if not (folder / GRID_RECORD).is_file():
            raise ValueError(
                f"{args.folder} is not a study's experiment folder (no grid.json); e.g. runs/NAME-PROFILE or "
                "s3://BUCKET/PATH/NAME-PROFILE"
            )

    cloud = args.folder if is_cloud_uri(args.folder) else None
    if not cloud:
        check(Path(args.folder))  # before the store is touched
    uri = resolve_tracking_uri(args.tracking_uri)
    check_reachable(uri)
    uri = prepare_store(uri)
    with local_copy(cloud or Path(args.folder).resolve()) as folder, _driver_gone(cloud or folder) as gone:
        check(folder)
        synced = sync_experiment(folder, uri, copy_of=cloud, driver_gone=gone)  # the records were copied once
        print(synced)
        tags = {"experiment": folder.name}
        for name, version in register_study_models(uri, folder.name, synced.trial_ids, tags).items():
            print(f"registered models:/{name}/{version} (alias @best)")
    if synced.problems:
        print(f"{len(synced.problems)} things not delivered (listed above); the rest is in {uri}", file=sys.stderr)
        return 1
    return 0


@contextlib.contextmanager
def _driver_gone(experiment: str | Path) -> Iterator[bool]:
    """Whether no driver runs the experiment, holding its lock meanwhile so that none starts during the sync."""
    from .store.lock import StudyRunning, driver_lock

    with contextlib.ExitStack() as held:
        try:
            held.enter_context(driver_lock(str(experiment)))
        except StudyRunning:
            yield False
            return
        yield True


def run_dashboard(args: argparse.Namespace) -> int:
    """Serve the Streamlit dashboard on the store, bound to 127.0.0.1 unless --host says otherwise.

    This process becomes Streamlit (exec, same pid): a SIGTERM or Ctrl-C to `reslab dashboard` stops the
    server, which a child process would outlive."""
    import os

    from .dashboard import APP
    from .tracking.store import existing_store

    uri = existing_store(args.tracking_uri)
    check_port_free(args.host, args.port)
    command = [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.address", args.host,
        "--server.port", str(args.port),
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--client.showErrorDetails", "false",  # error details stay in this console, not in the browser
    ]  # fmt: skip
    print(f"dashboard on http://{args.host}:{args.port} for {uri}", file=sys.stderr, flush=True)
    sys.stdout.flush()
    os.execve(sys.executable, command, {**os.environ, "RESLAB_TRACKING_URI": uri})


def check_port_free(host: str, port: int) -> None:
    """ValueError when `port` on `host` is taken (Streamlit would print the URL, then fail)."""
    import socket

    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ValueError(
                f"--port {port} on {host} is not available ({error.strerror or error}); pass another --port"
            ) from error


def run_report(args: argparse.Namespace) -> int:
    """Write a study's report: one self-contained HTML file with its tables and figures."""
    from .dashboard.report import study_report
    from .tracking.store import existing_store
    from .writable import check_writable

    out = args.out or Path(f"{args.study}.html")
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; name the HTML file to write, e.g. {out / (args.study + '.html')}")
    check_writable(out, "--out")
    uri = existing_store(args.tracking_uri)
    text = study_report(uri, args.study)  # before opening the file: a bad name or a store that is down writes nothing
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out} ({len(text.encode()) / 1e6:.1f} MB, opens offline in any browser)")
    return 0


def run_scorecard(args: argparse.Namespace) -> int:
    """Print every claim the store's studies checked, with its latest verdict."""
    from .dashboard.scorecard import scorecard, scorecard_markdown
    from .tracking.store import existing_store

    uri = existing_store(args.tracking_uri)
    table = scorecard(uri)
    if table.empty:
        print(f"no verdicts in {uri} yet: a study records them when it ends (python studies/NAME.py ...)")
        return 0
    print(scorecard_markdown(table), end="")
    return 0


def run_bench(args: argparse.Namespace) -> int:
    from .bench import format_results, run_benchmark

    results = run_benchmark(
        args.models,
        iterations=args.iterations,
        batch_size=args.batch_size,
        reference_workers=args.reference_workers,
        device=args.device,
        precision=args.precision,
    )
    print(json.dumps([r.as_dict() for r in results]) if args.json else format_results(results))
    return 0


def run_study_command(args: argparse.Namespace) -> int:
    """`reslab study list` / `reslab study run NAME [options]`: the shipped studies, from an installed wheel too."""
    from .study.catalog import studies_of, study_module, study_names

    if args.action == "list":
        for name in study_names():
            studies = studies_of(study_module(name))
            datasets = ", ".join(s.dataset for s in studies)
            print(f"{name:<20} {datasets:<18} {studies[0].title}")
        return 0
    from .launch import main as study_main

    module = study_module(args.name)
    return study_main(*studies_of(module), argv=args.options, prog=f"reslab study run {args.name}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reslab", description=__doc__)
    parser.add_argument("--version", action="version", version=f"reslab {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_train_parser(commands)
    models = commands.add_parser("models", help="the model zoo (default), the trained-model registry, pulling a model")
    actions = models.add_subparsers(dest="action")
    actions.add_parser("zoo", help="list the architectures with parameters and multiply-adds (the default)")
    listing = actions.add_parser("list", help="list trained nets registered by studies: versions, aliases, errors")
    pull = actions.add_parser("pull", help="download a registered net's model folder")
    pull.add_argument("name", help="NAME (= NAME@best), NAME@ALIAS or NAME/VERSION, optionally as models:/…")
    pull.add_argument("--out", type=Path, required=True, help="folder to download into")
    for action in (listing, pull):
        action.add_argument("--tracking-uri", help="MLflow store (default: $MLFLOW_TRACKING_URI or runs/mlflow.db)")
    study = commands.add_parser("study", help="the paper's studies reslab ships: list them, run one")
    study_actions = study.add_subparsers(dest="action", required=True)
    study_actions.add_parser("list", help="the shipped studies, their datasets and titles")
    run = study_actions.add_parser(
        "run",
        help="run a shipped study, as python studies/NAME.py would",
        description="Every option after NAME goes to the study: see `reslab study run NAME --help`.",
        add_help=False,  # --help after NAME is the study's own
    )
    run.add_argument("name", help="a study's name, as `reslab study list` gives it")
    run.add_argument("options", nargs=argparse.REMAINDER, help="the study's options (--profile, --storage, ...)")
    tracking = commands.add_parser("tracking", help="MLflow tracking of studies")
    tracking_actions = tracking.add_subparsers(dest="action", required=True)
    sync = tracking_actions.add_parser("sync", help="deliver a study's results that MLflow missed (store was down)")
    sync.add_argument(
        "folder",
        help="the study's experiment folder, e.g. runs/plain_vs_residual_cifar10-quick or s3://BUCKET/studies/NAME",
    )
    sync.add_argument("--tracking-uri", help="MLflow store (default: $MLFLOW_TRACKING_URI or runs/mlflow.db)")
    dashboard = commands.add_parser("dashboard", help="the results dashboard (Streamlit) for a tracking store")
    dashboard.add_argument("--tracking-uri", help="MLflow store (default: $MLFLOW_TRACKING_URI or runs/mlflow.db)")
    dashboard.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    dashboard.add_argument("--port", type=port_number, default=8501)
    report = commands.add_parser("report", help="write a study's tables and figures into one self-contained HTML file")
    report.add_argument("study", help="the study as the dashboard lists it: NAME-PROFILE, e.g. plain_vs_residual-smoke")
    report.add_argument("--out", type=Path, help="the HTML file to write (default: STUDY.html here)")
    report.add_argument("--tracking-uri", help="MLflow store (default: $MLFLOW_TRACKING_URI or runs/mlflow.db)")
    card = commands.add_parser(
        "scorecard", help="every claim of the paper the store's studies checked: latest verdicts"
    )
    card.add_argument("--tracking-uri", help="MLflow store (default: $MLFLOW_TRACKING_URI or runs/mlflow.db)")
    bench = commands.add_parser("bench", help="training images/s of reslab's loop vs a DataLoader reference")
    bench.add_argument("--models", nargs="+", default=["cifar_resnet20", "cifar_resnet56", "cifar_resnet110"])
    bench.add_argument("--iterations", type=positive_int, default=20, help="timed iterations per loop")
    bench.add_argument("--batch-size", type=positive_int, default=128)
    bench.add_argument("--reference-workers", type=int, default=2, help="DataLoader workers of the reference")
    bench.add_argument("--device", help="cpu or cuda (default: CUDA when available)")
    bench.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto", help="reslab loop's precision")
    bench.add_argument("--json", action="store_true", help="print the results as one JSON line")
    return parser


COMMANDS = {
    "train": run_train,
    "models": run_models,
    "tracking": run_tracking_sync,
    "study": run_study_command,
    "dashboard": run_dashboard,
    "report": run_report,
    "scorecard": run_scorecard,
    "bench": run_bench,
}


def main(argv: list[str] | None = None) -> int:
    import os

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a bar per small JSON file is noise
    args = build_parser().parse_args(argv)
    configure_logging()
    try:
        return COMMANDS[args.command](args)
    except Exception as error:
        if not isinstance(error, user_errors()):
            raise
        print(f"reslab: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
