"""The command line every study script shares: `python studies/X.py --profile smoke|quick|paper …`."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace

from ..arguments import gigabytes, gpu_share, positive_int, seconds
from ..data import DatasetNotFoundError
from ..data.fetch import check_source
from ..logs import configure_logging
from ..store.storage import StorageFault, quiet_storage_faults
from ..study.plan import format_plan, plan, planned_trials, recipe_lines, seeds_note
from ..study.spec import PROFILES, Study
from ..tracking import TrackingUnavailable
from .options import RunOptions
from .preflight import SIGTERM_RECEIVED, check_data_here, ray_shutdown


def build_parser(*studies: Study, prog: str | None = None) -> argparse.ArgumentParser:
    study = studies[0]
    parser = argparse.ArgumentParser(prog=prog, description="; ".join(f"{s.title} ({s.dataset})" for s in studies))
    if len(studies) > 1:
        parser.add_argument(
            "--dataset",
            choices=[s.dataset for s in studies],
            default=study.dataset,
            help="which version of the study to run",
        )
    parser.add_argument(
        "--profile",
        choices=list(PROFILES),
        default="smoke",
        help="smoke: minutes on a laptop; quick: short real runs; paper: the full recipe",
    )
    parser.add_argument("--data-dir", help="dataset location (smoke runs without it use synthetic data)")
    parser.add_argument(
        "--data-source",
        metavar="URI",
        help="where a node that lacks --data-dir copies it from: a folder (s3://bucket/imagenet, an NFS path) "
        "or a .tar.gz archive (https:// too)",
    )
    parser.add_argument(
        "--data-max-gb",
        type=gigabytes,
        metavar="GB",
        help="the most a --data-source archive may unpack to (default: 4x the dataset's size: CIFAR-10 0.74, "
        "ImageNet 588)",
    )
    parser.add_argument(
        "--tracking-uri",
        help="MLflow store: http://host:port or sqlite:///path.db (default: $MLFLOW_TRACKING_URI, else runs/mlflow.db)",
    )
    parser.add_argument(
        "--storage",
        default=os.environ.get("RESLAB_STORAGE", "runs"),
        help="results and checkpoints: a local path or a cloud URI such as s3://bucket/reslab",
    )
    parser.add_argument(
        "--shared-storage",
        action="store_true",
        default=os.environ.get("RESLAB_SHARED_STORAGE") == "1",
        help="a local --storage (and sqlite store) is on NFS that every cluster node mounts ($RESLAB_SHARED_STORAGE=1)",
    )
    parser.add_argument(
        "--allow-cpu-fallback",
        action="store_true",
        help="a trial given a GPU that torch cannot use trains on the CPU instead of failing",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="require an existing experiment to restore (re-running restores one anyway)",
    )
    parser.add_argument(
        "--store-wait",
        type=seconds,
        default=120.0,
        metavar="SECONDS",
        help="at the end, how long to wait for a tracking server that does not answer (default: 120)",
    )
    parser.add_argument("--max-concurrent-trials", type=positive_int, help="default: as many as resources allow")
    parser.add_argument("--gpus-per-trial", type=gpu_share, help="override the GPU share chosen from the model")
    parser.add_argument(
        "--data-parallel",
        type=positive_int,
        metavar="N",
        help="train each trial on N Ray Train workers (one GPU, or CPU, each) with DDP",
    )
    parser.add_argument(
        "--no-cuda-graph",
        dest="cuda_graph",
        action="store_false",
        help="on CUDA, run each step eagerly instead of replaying it as a captured graph (4x faster on ResNet-20)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the trials, their compute and GPU-hours on named GPUs only"
    )
    parser.add_argument(
        "--measure", action="store_true", help="with --dry-run: also time each workload on this machine (trains steps)"
    )
    parser.add_argument(
        "--price-per-gpu-hour", type=float, metavar="USD", help="with --dry-run: the GPU-hours' price at this rate"
    )
    parser.add_argument(
        "--verbose", action="store_true", help="Ray Tune's own status tables and the trial workers' output too"
    )
    return parser


def options(args: argparse.Namespace) -> RunOptions:
    """How the study runs, as its flags say."""
    return RunOptions(
        data_dir=args.data_dir,
        data_source=args.data_source,
        data_max_bytes=round(args.data_max_gb * 1e9) if args.data_max_gb else None,
        resume=args.resume,
        max_concurrent_trials=args.max_concurrent_trials,
        gpus_per_trial=args.gpus_per_trial,
        shared_storage=args.shared_storage,
        allow_cpu_fallback=args.allow_cpu_fallback,
        store_wait_s=args.store_wait,
        verbose=args.verbose,
    )


def configure_study_process(verbose: bool) -> None:
    """The process-wide settings a study's driver runs with, made here at its entry point (library code sets
    none, so a notebook that calls `run_study` keeps its own). An existing value is kept."""
    settings = {
        # save the experiment state (which trials finished, their checkpoints) every second, not every 10 s or
        # more, so a driver killed just after a trial ends does not run it again
        "TUNE_GLOBAL_CHECKPOINT_S": "1",
        # a lost tracking server must not stall the driver for minutes per call (MLflow's default: 7 retries,
        # 120 s timeout): a failed write is skipped and synced from Ray's storage later
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "10",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # no bars in a study's console
    }
    if not verbose:  # Ray Tune's legacy reporter at verbosity 0 prints nothing; reslab's console speaks
        settings["RAY_AIR_NEW_OUTPUT"] = "0"
    for name, value in settings.items():
        os.environ.setdefault(name, value)
    if not verbose:
        quiet_storage_faults()


def main(*studies: Study, argv: list[str] | None = None, prog: str | None = None) -> int:
    """Parse the shared flags and run (or plan) the chosen study; bad input exits 2 with one message.

    A study file may offer one study per dataset (e.g. CIFAR-10 and ImageNet); `--dataset` picks one.
    """
    args = build_parser(*studies, prog=prog).parse_args(argv)
    configure_study_process(args.verbose)
    configure_logging(args.verbose)
    try:
        return _main(studies, args)
    finally:
        ray_shutdown()


def flagged_study(studies: tuple[Study, ...], args: argparse.Namespace) -> Study:
    """The study `--dataset` picks, with the flags that set how its trials run (runtime fields: the trials
    keep their identities, so a restore with other flags continues the same experiment)."""
    study = next(s for s in studies if s.dataset == getattr(args, "dataset", studies[0].dataset))
    runtime = {"data_parallel": args.data_parallel} if args.data_parallel is not None else {}
    runtime |= {} if args.cuda_graph else {"cuda_graph": False}
    return replace(study, settings={**study.settings, **runtime}) if runtime else study


def _main(studies: tuple[Study, ...], args: argparse.Namespace) -> int:
    from .run import run_study  # Ray, only once a study runs: `--dry-run` and a study file's import need none

    study = flagged_study(studies, args)
    try:
        study.validate(args.profile, args.data_dir)
        if args.data_source and not args.data_dir:
            raise ValueError("--data-source needs --data-dir: the folder where each node keeps its copy")
        if args.dry_run:
            trials = study.trials(args.profile, args.data_dir)
            if args.data_source:
                check_source(args.data_source)
            else:
                check_data_here(trials)
            concurrency = args.max_concurrent_trials or os.cpu_count() or 1
            planned = plan(planned_trials(study, args.profile, args.data_dir), measure=args.measure)
            print(format_plan(planned, concurrency, "this machine", args.price_per_gpu_hour))
            print(recipe_lines(study, args.profile, args.data_dir))
            if note := seeds_note(study, args.profile):
                print(note)
            return 0
        run = run_study(
            study, args.profile, storage=args.storage, tracking_uri=args.tracking_uri, options=options(args)
        )
    except DatasetNotFoundError as error:
        choices = f"; --dataset chooses the study's data: {', '.join(s.dataset for s in studies)}"
        print(f"{study.name}: error: {error}{choices if len(studies) > 1 else ''}", file=sys.stderr)
        return 2
    except (ValueError, TrackingUnavailable) as error:
        print(f"{study.name}: error: {error}", file=sys.stderr)
        return 2
    except StorageFault as error:  # the study ran, and its storage stopped taking writes: what to do
        print(f"{study.name}: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # a second Ctrl-C (the first lets Tune save and stop): no traceback, resumable
        print(
            f"{study.name}: stopped at once; run the same command again (or with --resume) to continue",
            file=sys.stderr,
        )
        return 143 if SIGTERM_RECEIVED.is_set() else 130
    if run.interrupted:
        return 143 if SIGTERM_RECEIVED.is_set() else 130
    failed = [o for o in run.outcomes if o.status == "failed"]
    return 1 if failed or run.untracked else 0
