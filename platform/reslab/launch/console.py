"""What a researcher watching a study sees: one line per report, one when a trial ends, instead of Ray
Tune's status table and per-trial config dumps (those stay behind `--verbose`).

    cifar_resnet20-A   seed 0  it    12/24     train 85.94 %  test 88.20 %   402 img/s  ETA 0:00:04
"""

from __future__ import annotations

import datetime
import sys
from typing import Any

from ray.tune import Callback

from ..tracking.trials import TrialParams


def _eta(seconds: float) -> str:
    return str(datetime.timedelta(seconds=round(max(0.0, seconds))))


def report_line(label: str, seed: int, planned: int, result: dict[str, Any], width: int = 24) -> str:
    """One report as a line: variant, seed, iteration/planned, train and test error, images/s, ETA."""
    iteration = int(result.get("iteration", 0))
    seconds = float(result.get("time_total_s", 0.0) or 0.0)  # Tune's clock for the trial, kept across restores
    eta = _eta(seconds / iteration * (planned - iteration)) if iteration > 0 and seconds > 0 else "?"
    train, test = (100 * float(result.get(k, float("nan"))) for k in ("train_error", "test_error"))
    return (
        f"{label:<{width}} seed {seed:<2} it {iteration:>6}/{planned:<6} train {train:6.2f} %  test {test:6.2f} %  "
        f"{result.get('images_per_second', 0.0):7.0f} img/s  ETA {eta}"
    )


class ConsoleReport(Callback):
    """Prints each trial's reports and its end to stdout, one line each."""

    def __init__(self, width: int = 24) -> None:
        self.width = width
        self.closed = False  # the console went away (a closed pipe or terminal): the study goes on silently
        self.told: set[str] = set()  # trials whose skipped checkpoints were already reported

    def _who(self, trial: Any) -> tuple[str, int, int]:
        record = TrialParams.read(trial.config).record(trial.trial_id)
        return record.label, record.seed, record.planned

    def _print(self, text: str) -> None:
        if self.closed:
            return
        try:
            print(text, file=sys.stdout, flush=True)
        except OSError:
            self.closed = True

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if result.get("failed") or result.get("diverged"):
            return  # the trial's end says why
        label, seed, planned = self._who(trial)
        if (skipped := result.get("checkpoint_skipped")) and trial.trial_id not in self.told:
            self.told.add(trial.trial_id)
            resumed = f"resumed from iteration {result.get('resumed_from', 0)}"
            self._print(f"{label:<{self.width}} seed {seed:<2} {resumed}, skipping a damaged checkpoint: {skipped}")
        self._print(report_line(label, seed, planned, result, self.width))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        label, seed, planned = self._who(trial)
        last = trial.last_result or {}
        if last.get("failed"):
            ended = f"failed: {last.get('failed_reason', '')}"
        elif last.get("diverged"):
            ended = f"diverged: {last.get('diverged_reason', '')}"
        elif int(last.get("iteration", 0)) < planned:
            ended = f"stopped at iteration {last.get('iteration', 0)} of {planned}"
        else:
            ended = f"finished: test error {100 * float(last.get('test_error', float('nan'))):.2f} %"
        self._print(f"{label:<{self.width}} seed {seed:<2} {ended}")

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        label, seed, _ = self._who(trial)
        self._print(f"{label:<{self.width}} seed {seed:<2} lost its worker: retried from its last checkpoint")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        label, seed, _ = self._who(trial)
        error = trial.get_error()
        reason = f"{type(error).__name__}: {error}".splitlines()[0][:300] if error else "unknown error"
        self._print(f"{label:<{self.width}} seed {seed:<2} failed: {reason} (details: {trial.error_file})")
