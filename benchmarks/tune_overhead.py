"""Ray Tune's and MLflow's overhead on one trial: the same training run through the study runner and as a
bare loop, and where the difference goes.

Both runs train the same config (same model, data, iterations, evaluation and checkpoint cadence) in
this session, one CPU thread each (a trial gets one CPU), and the figure is their ratio:

    python benchmarks/tune_overhead.py [--iterations 240] [--checkpoint-cost] [--trials 3]

Two baselines: the bare loop in this process (torch and reslab already imported: the harshest comparison)
and the same loop as a script in a fresh process (what a researcher would otherwise run: it pays Python's
and torch's imports, as a trial's worker does). Prints the wall time of each, Ray's start-up time, the
overhead with and without the start-up (a study pays the start-up once for all its trials), and a
breakdown of the study's time: the driver's phases (checks, store, Tune's setup, the run, the sync, the
registry, the summary), the trial's own time inside its worker (Tune's `time_total_s`) against the bare
loop, and the rest of `Tuner.fit` (the worker's start and Tune's bookkeeping). The breakdown times the
runner's own functions by wrapping them in this process. With `--trials N`, it also runs N such trials (one
seed each) one at a time, as a study on a busy cluster does, and prints the fixed cost per trial there: the
later trials run in the first one's worker (Tune's `reuse_actors`).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from reslab.launch import run as study_runner
from reslab.launch.options import RunOptions
from reslab.launch.preflight import ray_init
from reslab.launch.run import run_study
from reslab.study import Study
from reslab.study.spec import PROFILES
from reslab.training import build_trainer
from reslab.training.checkpoint import TRIAL_CHECKPOINT

PHASES = {  # the runner's functions a study's time is spent in, as the breakdown names them
    "prepare_launch": "checks before Ray (config, data, store, grid)",
    "prepare_store": "MLflow store (WAL mode)",
    "_tuner": "Tune's setup (Tuner, grid and launch records)",
    "_sync_tracking": "sync of MLflow with Ray's storage",
    "_register_models": "model registry",
    "_summarize": "summary and verdicts",
    "_record_verdicts": "verdicts into MLflow",
}


def bare_seconds(study: Study, checkpoints: bool) -> float:
    """Wall time of the trial's config trained by the bare loop (build included, as in a trial); with
    `checkpoints`, it also saves a checkpoint at every report as a trial does."""
    (trial,) = study.trials("smoke", None)
    started = time.perf_counter()
    trainer = build_trainer(trial.config)
    with tempfile.TemporaryDirectory() as folder:
        trainer.run((lambda _: trainer.save(Path(folder) / TRIAL_CHECKPOINT)) if checkpoints else None)
    return time.perf_counter() - started


FRESH_PROCESS_LOOP = """
import json, sys
import torch
torch.set_num_threads(1)
from reslab.training import TrainConfig, build_trainer
build_trainer(TrainConfig.from_dict(json.loads(sys.argv[1]))).run()
"""


def fresh_process_seconds(study: Study) -> float:
    """Wall time of the same loop as a script in a new Python process, imports included: the trial's own
    config, handed over as JSON, and only the imports the loop needs."""
    (trial,) = study.trials("smoke", None)
    started = time.perf_counter()
    command = [sys.executable, "-c", FRESH_PROCESS_LOOP, json.dumps(trial.config.to_dict())]
    subprocess.run(command, check=True, capture_output=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return time.perf_counter() - started


def timed(spent: dict[str, float], name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            spent[name] += time.perf_counter() - started

    return wrapper


def ray_processes() -> dict[int, Any]:
    """Ray's daemons on this machine (GCS, raylet, its agents, the monitors) and its idle workers, by pid."""
    import psutil
    import ray

    node = ray._private.worker._global_node  # the embedded Ray this process started
    found = {}
    for infos in node.all_processes.values():
        for info in infos:
            process = psutil.Process(info.process.pid)
            found.update({p.pid: p for p in [process, *process.children(recursive=True)]})
    return found


def cpu_seconds(processes: dict[int, Any]) -> dict[int, tuple[str, float]]:
    times = {}
    for pid, process in processes.items():
        try:
            cpu = process.cpu_times()
            times[pid] = (process.name(), cpu.user + cpu.system)
        except Exception:  # ended meanwhile
            continue
    return times


def tune_seconds(study: Study, storage: str, spent: dict[str, float]) -> tuple[float, float, int]:
    """The study's wall time, its trial's own time in its worker (Tune's time_total_s) and the worker's pid."""
    from ray import tune

    originals = {name: getattr(study_runner, name) for name in PHASES}
    fit = tune.Tuner.fit
    for name, function in originals.items():
        setattr(study_runner, name, timed(spent, name, function))
    tune.Tuner.fit = timed(spent, "fit", fit)
    try:
        started = time.perf_counter()
        store = f"sqlite:///{storage}/mlflow.db"  # a new store, as a first study makes
        run = run_study(study, profile="smoke", storage=storage, tracking_uri=store, out=open(os.devnull, "w"))  # noqa: SIM115
        total = time.perf_counter() - started
    finally:
        for name, function in originals.items():
            setattr(study_runner, name, function)
        tune.Tuner.fit = fit
    assert run.outcomes[0].status == "finished", run.outcomes
    results = next(Path(run.path).glob("*/result.json"))  # the trial's reports, one JSON line each
    last = json.loads(results.read_text().strip().splitlines()[-1])
    return total, float(last["time_total_s"]), int(last["pid"])


def study_of(seeds: int, settings: dict[str, Any]) -> Study:
    """The one trial's study, run with `seeds` seeds (identical work, distinct trials)."""
    variants = ({"batch_size": 128},)
    seeds_ = tuple(range(seeds))
    return Study("tune_overhead", "Ray Tune overhead", "cifar10", variants, seeds=seeds_, settings=settings)


def several_trials_seconds(study: Study, storage: str) -> float:
    """Wall time of the study's trials run one at a time through the study runner (Ray already up). The
    smoke profile runs each variant's first seed only: here it runs them all."""
    smoke = PROFILES["smoke"]
    PROFILES["smoke"] = replace(smoke, max_seeds=None)
    try:
        started = time.perf_counter()
        store = f"sqlite:///{storage}/mlflow.db"
        run = run_study(study, "smoke", storage=storage, tracking_uri=store,
                        options=RunOptions(max_concurrent_trials=1), out=open(os.devnull, "w"))  # noqa: SIM115  # fmt: skip
    finally:
        PROFILES["smoke"] = smoke
    assert len(run.outcomes) == len(study.seeds), run.outcomes
    assert all(o.status == "finished" for o in run.outcomes), run.outcomes
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=240, help="60-120 s on one core, by CPU")
    parser.add_argument("--eval-every", type=int, default=40)
    parser.add_argument("--checkpoint-cost", action="store_true", help="also time the bare loop checkpointing")
    parser.add_argument("--trials", type=int, default=1, help="also run this many trials one at a time")
    args = parser.parse_args()
    settings = {"model": "cifar_resnet20", "iterations": args.iterations, "eval_every": args.eval_every}
    study = study_of(1, settings)
    torch.set_num_threads(1)  # a trial runs with one CPU (Ray sets OMP_NUM_THREADS=1 for it)
    bare = bare_seconds(study, checkpoints=False)
    fresh = fresh_process_seconds(study)
    started = time.perf_counter()
    ray_init(None, verbose=False)
    startup = time.perf_counter() - started
    spent: dict[str, float] = defaultdict(float)
    daemons = ray_processes()
    before, driver_before = cpu_seconds(daemons), time.process_time()
    with tempfile.TemporaryDirectory() as storage:
        tuned, in_worker, trial_pid = tune_seconds(study, storage, spent)
    after, driver_cpu = cpu_seconds(daemons), time.process_time() - driver_before
    daemon_cpu: dict[str, float] = defaultdict(float)
    for pid, (name, seconds) in after.items():
        if pid != trial_pid and pid in before:
            daemon_cpu[name] += seconds - before[pid][1]
    print(f"bare loop, this process:   {bare:7.1f} s")
    print(f"bare loop, fresh process:  {fresh:7.1f} s  (imports included)")
    if args.checkpoint_cost:
        checkpointed = bare_seconds(study, checkpoints=True)
        print(f"  + a checkpoint per report:   {checkpointed:7.1f} s ({100 * (checkpointed - bare) / bare:+.1f} %)")
    print(f"through Ray Tune:          {tuned:7.1f} s  (+ {startup:.1f} s starting Ray once)")
    for name, baseline in (("this process", bare), ("fresh process", fresh)):
        overhead, with_startup = 100 * (tuned - baseline) / baseline, 100 * (tuned + startup - baseline) / baseline
        print(f"overhead over the {name + ':':<14} {overhead:+6.1f} %  (ratio {tuned / baseline:.3f}); "
              f"with Ray's start-up {with_startup:+.1f} %")  # fmt: skip
    print("\nwhere the study's time goes (s, and the share of the overhead over the bare loop):")
    overhead = tuned - bare
    rows = [(PHASES[name], spent[name]) for name in PHASES]
    rows += [
        ("the trial in its worker, against the bare loop", in_worker - bare),
        ("Tuner.fit beyond the trial (worker start, Tune's loop)", spent["fit"] - in_worker),
        ("the rest of run_study (lock, Ray already up)", tuned - spent["fit"] - sum(spent[n] for n in PHASES)),
    ]
    for what, seconds in rows:
        print(f"  {what:<58} {seconds:6.2f} s  {100 * seconds / overhead:6.1f} %")
    if args.trials > 1:
        with tempfile.TemporaryDirectory() as storage:
            several = several_trials_seconds(study_of(args.trials, settings), storage)
        per_trial = (several - args.trials * bare) / args.trials
        print(f"\n{args.trials} trials one at a time: {several:.1f} s against {args.trials} bare loops "
              f"{args.trials * bare:.1f} s: {100 * (several / (args.trials * bare) - 1):+.1f} %; fixed cost per "
              f"trial {per_trial:.1f} s (one trial alone: {tuned - bare:.1f} s)")  # fmt: skip
    busiest = ", ".join(f"{name} {seconds:.1f}" for name, seconds in sorted(daemon_cpu.items(), key=lambda x: -x[1]))
    print(f"\nCPU used meanwhile beside the trial: the driver {driver_cpu:.1f} s; Ray's daemons and idle workers "
          f"{sum(daemon_cpu.values()):.1f} s ({busiest}) of {tuned:.0f} s on {os.cpu_count()} cores")  # fmt: skip


if __name__ == "__main__":
    main()
