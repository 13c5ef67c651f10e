"""The `reslab` command: train a net, the model zoo and registry, studies, tracking, the dashboard, benchmarks."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .arguments import port_number, positive_int
from .commands.store import (
    run_dashboard,
    run_pull,
    run_registered,
    run_report,
    run_scorecard,
    run_tracking_sync,
)
from .commands.train import add_train_parser, run_train
from .logs import configure_logging

if TYPE_CHECKING:  # torch and the rest load in the command that needs them: `--help` answers at once
    pass


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
            if args.json:
                experiments = [f"{s.name}-PROFILE" for s in studies]  # how the store names them
                row = {"name": name, "datasets": [s.dataset for s in studies], "title": studies[0].title}
                print(json.dumps({**row, "experiments": experiments}))
            else:
                print(f"{name:<20} {datasets:<18} {studies[0].title}")
        return 0
    from .launch import main as study_main

    module = study_module(args.name)
    return study_main(*studies_of(module), argv=args.options, prog=f"reslab study run {args.name}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reslab", description=__doc__)
    parser.add_argument("--version", action="version", version=f"reslab {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    add_train_parser(commands)
    models = commands.add_parser("models", help="the model zoo (default), the trained-model registry, pulling a model")
    actions = models.add_subparsers(dest="action")
    actions.add_parser("zoo", help="list the architectures with parameters and multiply-adds (the default)")
    listing = actions.add_parser("list", help="list trained nets registered by studies: versions, aliases, errors")
    listing.add_argument("--json", action="store_true", help="one JSON object per version, one per line")
    pull = actions.add_parser("pull", help="download a registered net's model folder")
    pull.add_argument("name", help="NAME (= NAME@best), NAME@ALIAS or NAME/VERSION, optionally as models:/…")
    pull.add_argument("--out", type=Path, required=True, help="folder to download into")
    for action in (listing, pull):
        action.add_argument("--tracking-uri", help="MLflow store (default: $MLFLOW_TRACKING_URI or runs/mlflow.db)")
    study = commands.add_parser("study", help="the paper's studies reslab ships: list them, run one")
    study_actions = study.add_subparsers(dest="action", required=True)
    study_list = study_actions.add_parser("list", help="the shipped studies, their datasets and titles")
    study_list.add_argument("--json", action="store_true", help="one JSON object per study, one per line")
    run = study_actions.add_parser(
        "run",
        help="run a shipped study, as python studies/NAME.py would",
        description="Every option after NAME goes to the study (--help after NAME: the study's own options). "
        "NAME is one of `reslab study list`; e.g. reslab study run plain_vs_residual --profile smoke",
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
    card.add_argument("--json", action="store_true", help="one JSON object per claim, one per line")
    bench = commands.add_parser("bench", help="training images/s of reslab's loop vs a DataLoader reference")
    bench.add_argument("--models", nargs="+", default=["cifar_resnet20", "cifar_resnet56", "cifar_resnet110"])
    bench.add_argument("--iterations", type=positive_int, default=20, help="timed iterations per loop")
    bench.add_argument("--batch-size", type=positive_int, default=128)
    bench.add_argument("--reference-workers", type=int, default=2, help="DataLoader workers of the reference")
    bench.add_argument("--device", help="cpu or cuda (default: CUDA when available)")
    bench.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto", help="reslab loop's precision")
    bench.add_argument("--json", action="store_true", help="print the results as one JSON line")
    parser.set_defaults(leaves=_leaves(parser))
    return parser


def _leaves(parser: argparse.ArgumentParser) -> dict[tuple[str, ...], argparse.ArgumentParser]:
    """Every (sub)command's own parser by its path ("models", "list"): an unknown flag is reported by the
    command it was given to, with that command's usage, not the top-level one."""
    found: dict[tuple[str, ...], argparse.ArgumentParser] = {(): parser}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found |= {(name, *path): leaf for path, leaf in _leaves(sub).items()}
    return found


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
    args, unknown = build_parser().parse_known_args(argv)
    if unknown:
        path = tuple(p for p in (args.command, getattr(args, "action", None)) if p)
        args.leaves.get(path, args.leaves[path[:1]]).error(f"unrecognized arguments: {' '.join(unknown)}")
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
