"""The Ray Tune callback that mirrors a study's trials into MLflow while it runs: a thin adapter from Tune's
trial objects and the study's param layout to `reslab.tracking.writer`'s typed records.

Only the driver writes, so the store sees one writer however many trials run. When the store stops
answering, training goes on: writes are skipped and counted (every result stays in Ray's storage, and the
sync delivers what is missing when the store is back), and the store is tried again every RETRY_AFTER_S.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ray.tune import Callback

from ..store.seal import is_state_file, seal_files
from ..tracking.registry import warm_model_saving
from ..tracking.trials import error_reason, trial_record
from ..tracking.writer import MLflowWriter

log = logging.getLogger(__name__)

RETRY_AFTER_S = 10.0  # while the store does not answer, how long writes are skipped before trying again


class MLflowTracking(Callback):
    """Tune's trial events, written by an `MLflowWriter`; a store that does not answer never stops training."""

    def __init__(self, writer: MLflowWriter) -> None:
        self.writer = writer
        self.uri = writer.uri
        self.down_since: float | None = None  # when the store stopped answering (None: it answers)
        self._last_try = 0.0
        self.skipped_writes = 0
        self._preparing: threading.Thread | None = None  # the launch's run, then the first model save
        self._launched = threading.Event()  # set once the launch's run is written (or the store failed it)

    def __getstate__(self) -> dict[str, Any]:
        """Tune pickles its callbacks with the experiment: without the thread and its event."""
        return {k: v for k, v in self.__dict__.items() if k not in ("_preparing", "_launched")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A restored driver starts with a store that answers, as far as it knows."""
        self.__dict__.update(state)
        self.down_since, self._last_try, self.skipped_writes = None, 0.0, 0
        self._preparing, self._launched = None, threading.Event()

    def setup(self, **info: Any) -> None:
        """Start the launch in MLflow (the experiment, its parent run and study.json) in a thread: it takes
        about 2 s on a new SQLite store (MLflow creates its tables), which the first trial's worker spends
        starting anyway; the first write about a trial waits for it. The same thread then pays the process's
        first model save (about 3 s more than the next ones, `warm_model_saving`) while the trials train."""
        self._preparing = threading.Thread(target=self._prepare, name="reslab-mlflow-launch", daemon=True)
        self._preparing.start()

    def _prepare(self) -> None:
        try:
            self._guarded(self.writer.start_launch)
        finally:
            self._launched.set()
        with contextlib.suppress(Exception):  # a failed warm-up only means the first model save pays for it
            warm_model_saving()

    def _guarded(self, write: Callable[[], Any]) -> None:
        """Run one write to the store, after the launch's; skip it (counted) while the store does not answer."""
        if self._preparing is not None and threading.current_thread() is not self._preparing:
            self._launched.wait()
        if self.down_since is not None and time.monotonic() - self._last_try < RETRY_AFTER_S:
            self.skipped_writes += 1
            return
        try:
            write()
        except Exception as error:  # any failure of the store must not stop the study
            self._last_try = time.monotonic()
            self.skipped_writes += 1
            if self.down_since is None:
                self.down_since = time.time()
                reason = f"{type(error).__name__}: {error}".splitlines()[0][:300]
                log.warning(
                    "MLflow store %s stopped answering (%s); training goes on and results are kept in Ray's "
                    "storage until it is back",
                    self.uri,
                    reason,
                )
            return
        if self.down_since is not None:
            log.info("MLflow store %s answers again", self.uri)
            self.down_since = None

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._guarded(lambda: self.writer.run_for(trial_record(trial.trial_id, trial.config)))

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self._guarded(lambda: self.writer.log_result(trial_record(trial.trial_id, trial.config), result))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        record = trial_record(trial.trial_id, trial.config)
        self._guarded(lambda: self.writer.close(record, trial.last_result or {}, trial.checkpoint))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        record = trial_record(trial.trial_id, trial.config)
        self._guarded(lambda: self.writer.close(record, trial.last_result or {}, error=_trial_error(trial)))

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._guarded(self.writer.end_launch)
        if self._preparing is not None:
            self._preparing.join()  # a study that ended within seconds: the process must not exit under it
        if self.skipped_writes:
            log.warning(
                "MLflow store %s: %d writes were skipped while it did not answer; the study syncs them from "
                "Ray's storage now (or run `reslab tracking sync` later)",
                self.uri,
                self.skipped_writes,
            )


def _trial_error(trial: Any) -> str:
    """Why Tune marked the trial errored, from the error it stored (its type and first line)."""
    try:
        return error_reason(trial.get_pickled_error() or trial.get_error())
    except Exception:  # the stored error cannot be read: the reason says where to look
        return error_reason(None)


class StateSeal(Callback):
    """Seals Tune's state each time Tune saves it. Tune calls every callback's `get_state` right after it
    wrote its experiment and search state to the driver's staging folder, and before it uploads that folder
    to the storage: the files sealed are the ones being uploaded. It keeps no key (this object is pickled into
    tuner.pkl): the key is read from `key_path()` when it seals."""

    def __init__(self, experiment_path: str) -> None:
        self.experiment_path = experiment_path
        self._staging: str | None = None
        self._sealed: dict[str, bytes] = {}

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        if self._staging is None and trials:
            self._staging = trials[0].storage.experiment_driver_staging_path

    def get_state(self) -> dict | None:
        if self._staging is not None:
            self._seal_staging()
        return None  # nothing of its own to save

    def _seal_staging(self) -> None:
        staging = Path(self._staging)
        try:
            files = {p.name: p.read_bytes() for p in staging.iterdir() if p.is_file() and is_state_file(p.name)}
            changed = {name: data for name, data in files.items() if self._sealed.get(name) != data}
            if changed:
                seal_files(self.experiment_path, changed)
                self._sealed.update(changed)
        except OSError as error:  # storage full or read-only: the last complete seal stays; the study's one
            log.debug("state not sealed: %s: %s", type(error).__name__, error)  # message says what to do

    def __getstate__(self) -> dict:
        return {"experiment_path": self.experiment_path}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["experiment_path"])
