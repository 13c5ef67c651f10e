"""What one report costs to log into MLflow, against one training step of ResNet-20 in the same session.

A report is what a trial sends every `eval_every` iterations: six metrics at one step. The driver's
`MLflowWriter.log_result` (what the Tune callback calls) writes it as one `log_batch`; the baseline is the
naive way, one `log_metric` call per metric, into the same kind of store in the same process:

    python benchmarks/tracking_cost.py [--reports 200] [--tracking-uri sqlite:///…]

Prints milliseconds per report for both and their ratio, and the cost as a share of one training
step (batch 128) so the figure reads against the work it accompanies.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from reslab.tracking import prepare_store
from reslab.tracking.layout import METRICS
from reslab.tracking.writer import MLflowWriter, TrialRecord


def trial_record(number: int) -> TrialRecord:
    config = {"model": "cifar_resnet20", "dataset": "cifar10"}
    return TrialRecord(trial_id=f"bench_{number:05d}", label=f"bench{number}", seed=0, config=config)


def report(step: int) -> dict[str, float]:
    return {"iteration": step, **{name: 1.0 / (step + len(name)) for name in METRICS}}


def batched_ms(uri: str, reports: int) -> float:
    """ms per report through reslab's writer (one log_batch per report)."""
    writer = MLflowWriter(uri, "tracking-cost", {"benchmark": "true"}, {})
    writer.start_launch()
    trial = trial_record(1)
    writer.run_for(trial)
    started = time.perf_counter()
    for step in range(1, reports + 1):
        writer.log_result(trial, report(step))
    return 1000 * (time.perf_counter() - started) / reports


def naive_ms(uri: str, reports: int) -> float:
    """ms per report with one log_metric call per metric, the pattern reslab avoids."""
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("tracking-cost").experiment_id
    run_id = client.create_run(experiment, run_name="naive").info.run_id
    started = time.perf_counter()
    for step in range(1, reports + 1):
        for name, value in report(step).items():
            if name != "iteration":
                client.log_metric(run_id, name, value, step=step)
    return 1000 * (time.perf_counter() - started) / reports


def training_step_ms(steps: int = 5) -> float:
    from reslab.training import TrainConfig, build_trainer, paper_recipe

    recipe = paper_recipe("cifar_resnet20").scaled(steps + 1)
    config = TrainConfig(model="cifar_resnet20", recipe=recipe, dataset="synthetic", eval_every=10_000)
    trainer = build_trainer(config)
    trainer.run()  # warm-up
    trainer = build_trainer(config)
    started = time.perf_counter()
    trainer.run()
    return 1000 * (time.perf_counter() - started) / (steps + 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reports", type=int, default=200)
    parser.add_argument("--tracking-uri", help="default: a fresh SQLite store in a temporary folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        uri = prepare_store(args.tracking_uri or f"sqlite:///{Path(tmp) / 'mlflow.db'}")
        batched = batched_ms(uri, args.reports)
        naive = naive_ms(uri, args.reports)
    step = training_step_ms()
    print(f"store: {'local SQLite (WAL)' if args.tracking_uri is None else args.tracking_uri}, {args.reports} reports")
    print(f"reslab (one log_batch per report):  {batched:7.2f} ms per report")
    print(f"naive (one log_metric per metric): {naive:7.2f} ms per report")
    print(f"ratio reslab / naive: {batched / naive:.2f}x")
    print(f"one ResNet-20 training step (batch 128, {torch.get_num_threads()} threads): {step:.1f} ms")
    print(f"a report costs {100 * batched / step:.1f} % of one training step (reports come every 200+ steps)")


if __name__ == "__main__":
    main()
