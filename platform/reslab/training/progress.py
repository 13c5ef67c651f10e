"""The progress bar of `reslab train`: iteration, loss, error, img/s and time left, between the report lines.

The ImageNet recipe reports every 60k iterations (hours apart on one GPU): without a bar, nothing shows that
the run is alive or when it ends. The bar reads the latest batch's loss and error only when it redraws
(reading waits for the device; the hot loop stays free of host synchronisation). On anything that is not
a terminal (a log file, a pipe, CI) there is no bar: only the report lines, as before.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

import torch

REFRESH_S = 0.5  # how often the bar's numbers are read and redrawn


class TrainingProgress:
    """tqdm's bar over the planned iterations, starting at `start` (a resumed run), on `stream`."""

    def __init__(self, total: int, start: int = 0, stream: TextIO | None = None, enabled: bool | None = None):
        from tqdm import tqdm

        self.stream = stream = stream or sys.stderr
        self.enabled = stream.isatty() if enabled is None else enabled
        self.bar = tqdm(
            total=total,
            initial=start,
            unit="it",
            file=stream,
            disable=not self.enabled,
            dynamic_ncols=True,
            smoothing=0.05,  # the rate over many steps: an evaluation pause should not swing the ETA
            bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]",  # tqdm adds ", "
        )
        self.test_error: float | None = None
        self.batch_numbers = ""  # the latest batch's loss and error, as last read
        self.speed = ""
        self.shown = 0.0

    def step(self, iteration: int, loss: torch.Tensor, errors: torch.Tensor, batch: int) -> None:
        if not self.enabled:
            return
        self.bar.update(iteration - self.bar.n)
        now = time.monotonic()
        if now - self.shown < REFRESH_S:
            return
        self.shown = now
        rate = self.bar.format_dict.get("rate") or 0.0  # iterations per second, smoothed
        self.batch_numbers = f"loss {loss.item() / batch:.3f}  err {100 * errors.item() / batch:.1f}%"
        self.speed = f"{rate * batch:.0f} img/s"
        self._show()

    def _show(self) -> None:
        test = f"test err {100 * self.test_error:.2f}%" if self.test_error is not None else ""
        self.bar.set_postfix_str("  ".join(p for p in (self.batch_numbers, test, self.speed) if p), refresh=True)

    def write(self, line: str, test_error: float | None = None) -> None:
        """A report line above the bar (the bar is redrawn below it)."""
        self.bar.write(line, file=self.stream)
        if test_error is not None and self.enabled:
            self.test_error = test_error
            self._show()
        self.stream.flush()

    def close(self) -> None:
        self.bar.close()
