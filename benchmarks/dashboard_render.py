"""How fast the curve view renders for a big study: 100 trials x 640 reports, in a generated store.

The store is generated with MLflow's own client (a real SQLite store, the layout a study writes: one
launch run with study.json, trial runs tagged like the callback tags them). Timed in this process:

- the first query (runs + every curve from the store), which the app then caches for 10 s;
- the render after it: seed bands, the Plotly figure and its JSON (what Streamlit sends the browser),
  as a ratio against the first query;
- the study's HTML report (its own queries included) and its size, also against the first query.

    python benchmarks/dashboard_render.py [--trials 100] [--points 640]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from reslab.dashboard import error_curve_figure, error_curves, study_definition, trial_runs
from reslab.dashboard.report import study_report
from reslab.tracking import prepare_store
from reslab.tracking.layout import LAUNCH_TAG, TRIAL_TAG


def generate_store(uri: str, trials: int, points: int) -> str:
    """A study of `trials` runs (10 configurations x seeds), each with `points` train/test reports."""
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    client = MlflowClient(uri)
    experiment = client.create_experiment("generated-paper")
    variants = [f"cifar_resnet{20 + 12 * i}" for i in range(10)]
    parent = client.create_run(experiment, tags={LAUNCH_TAG: "true"}).info.run_id
    definition = {"title": "generated", "profile": "paper", "variants": variants, "paper": {}, "trials": []}
    client.log_text(parent, json.dumps(definition), "study.json")
    rng = random.Random(0)
    for number in range(trials):
        variant, seed = variants[number % len(variants)], number // len(variants)
        tags = {TRIAL_TAG: f"t{number:05d}", "mlflow.parentRunId": parent, "reslab.variant": variant}
        run = client.create_run(experiment, tags=tags, run_name=f"{variant}-seed{seed}").info.run_id
        client.log_batch(run, params=[Param("seed", str(seed)), Param("recipe.iterations", str(64_000))])
        metrics, error = [], 0.9
        for step in range(1, points + 1):
            error = max(0.02, error * 0.995 + rng.uniform(-0.002, 0.002))
            metrics += [Metric("train_error", error, 0, step * 100), Metric("test_error", error + 0.05, 0, step * 100)]
        for start in range(0, len(metrics), 1000):
            client.log_batch(run, metrics=metrics[start : start + 1000])
        client.set_terminated(run, "FINISHED")
    return "generated-paper"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--points", type=int, default=640)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        uri = prepare_store(f"sqlite:///{Path(tmp) / 'mlflow.db'}")
        started = time.perf_counter()
        experiment = generate_store(uri, args.trials, args.points)
        generated = time.perf_counter() - started

        started = time.perf_counter()
        runs = trial_runs(uri, experiment)
        curves = error_curves(uri, runs)
        definition = study_definition(uri, experiment)
        query = time.perf_counter() - started

        renders = []
        for single in (False, True):
            started = time.perf_counter()
            figure = error_curve_figure(curves, definition.variants, single_seeds=single)
            figure.to_json()
            renders.append(time.perf_counter() - started)

        started = time.perf_counter()
        report = study_report(uri, experiment)
        reported = time.perf_counter() - started
    print(
        f"store: {args.trials} trials x {args.points} points x 2 metrics = {len(curves):,} values ({generated:.1f} s)"
    )
    print(f"first query (runs + curves): {query:.2f} s")
    print(f"render, mean ± std band over seeds: {renders[0]:.2f} s ({renders[0] / query:.2f}x the first query)")
    print(f"render, every seed as a line:       {renders[1]:.2f} s ({renders[1] / query:.2f}x the first query)")
    size = len(report.encode()) / 1e6
    ratio = reported / query
    print(f"HTML report with its queries:      {reported:.2f} s ({ratio:.2f}x the first query, {size:.1f} MB)")


if __name__ == "__main__":
    main()
