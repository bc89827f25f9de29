"""A callback that prints how far a fit is and how long the rest should take."""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO

import lightning as L
from lightning.pytorch.callbacks import Callback


def format_duration(seconds: float) -> str:
    """``"42 s"`` below two minutes, else ``"3.5 min"``."""
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


class TimeLeft(Callback):
    """Prints ``step k/N``, the time so far and the estimated time left of a fit.

    The estimate is the measured wall time per optimizer step so far (validation included, so its
    share is spread over the steps) times the steps left; the total is
    ``trainer.estimated_stepping_batches`` (``max_steps``/``max_epochs``). A line is printed after
    ``first`` steps and then every ``every`` share of the budget.

    Args:
        label: prefix of every line, e.g. the run's name.
        every: share of the step budget between two lines, in ``(0, 1]``.
        first: the step of the first estimate (>= 1).
        stream: where to print; by default the progress bar's ``print`` (stdout without one).
    """

    def __init__(self, label: str = "fit", every: float = 0.1, first: int = 5, stream: TextIO | None = None):
        if not 0.0 < every <= 1.0:
            raise ValueError(f"every: expected a share of the budget in (0, 1], got {every}")
        if first < 1:
            raise ValueError(f"first: expected >= 1, got {first}")
        self.label, self.every, self.first = label, every, first
        self.stream = stream
        self._start, self._start_step, self._next = 0.0, 0, first

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start, self._start_step = time.perf_counter(), trainer.global_step
        self._next = trainer.global_step + self.first

    def estimate(self, step: int, total: float, elapsed: float, start_step: int = 0) -> str:
        """The line printed at ``step`` of ``total`` after ``elapsed`` seconds since ``start_step``."""
        if not math.isfinite(total) or total <= 0:
            return f"[{self.label}] step {step}, {format_duration(elapsed)} so far"
        left = elapsed / max(step - start_step, 1) * max(total - step, 0)
        return (
            f"[{self.label}] step {step}/{int(total)} ({100 * step / total:.0f}%), "
            f"{format_duration(elapsed)} so far, about {format_duration(left)} left"
        )

    def on_train_batch_end(self, trainer: L.Trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        step = trainer.global_step
        if step < self._next:
            return
        total = float(trainer.estimated_stepping_batches)
        line = "    " + self.estimate(step, total, time.perf_counter() - self._start, self._start_step)
        bar = trainer.progress_bar_callback
        if self.stream is None and bar is not None and bar.is_enabled:
            bar.print(line)  # between the progress bar's redraws
        else:
            print(line, file=self.stream or sys.stdout, flush=True)
        stride = max(1, int(round(self.every * total))) if math.isfinite(total) else 100
        self._next = (step // stride + 1) * stride
