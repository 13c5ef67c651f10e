"""Ray Tune's overhead on one trial: the same training run through the study runner and as a bare loop.

Both runs train the same config (same model, data, iterations, evaluation and checkpoint cadence) in
this session, one CPU thread each (a trial gets one CPU), and the figure is their ratio:

    python benchmarks/tune_overhead.py [--iterations 240]

Prints the wall time of each, Ray's start-up time, and the overhead with and without the start-up
(a study pays the start-up once for all its trials).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch

from reslab.study import Study, run_study
from reslab.study.preflight import ray_init
from reslab.training import build_trainer


def bare_seconds(study: Study) -> float:
    """Wall time of the trial's config trained by the bare loop (build included, as in a trial)."""
    (trial,) = study.trials("smoke")
    started = time.perf_counter()
    build_trainer(trial.config).run()
    return time.perf_counter() - started


def tune_seconds(study: Study, storage: str) -> float:
    started = time.perf_counter()
    run = run_study(study, profile="smoke", storage=storage, out=open(os.devnull, "w"))  # noqa: SIM115
    assert run.outcomes[0].status == "finished", run.outcomes
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=240, help="about 60 s on one core of this machine")
    parser.add_argument("--eval-every", type=int, default=40)
    args = parser.parse_args()
    settings = {"model": "cifar_resnet20", "iterations": args.iterations, "eval_every": args.eval_every}
    study = Study(
        "tune_overhead", "Ray Tune overhead on one trial", "cifar10", ({"batch_size": 128},), settings=settings
    )
    torch.set_num_threads(1)  # a trial runs with one CPU (Ray sets OMP_NUM_THREADS=1 for it)
    bare = bare_seconds(study)
    started = time.perf_counter()
    ray_init(None, verbose=False)
    startup = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as storage:
        tuned = tune_seconds(study, storage)
    print(f"bare loop:           {bare:7.1f} s")
    print(f"through Ray Tune:    {tuned:7.1f} s  (+ {startup:.1f} s starting Ray once)")
    print(f"overhead:            {100 * (tuned - bare) / bare:+7.1f} %  (ratio {tuned / bare:.3f})")
    print(f"with Ray start-up:   {100 * (tuned + startup - bare) / bare:+7.1f} %")


if __name__ == "__main__":
    main()
