"""Learning-rate schedules over the training budget in optimizer steps.

The budget is the trainer's ``max_steps``/``max_epochs`` (``trainer.estimated_stepping_batches``),
never wall-clock time, so a run gives the same learning rates, and the same numbers, on every
machine. ``max_time`` stays what Lightning makes of it: a safety stop that a schedule never reads
(a run it cuts short stops with the learning rate where the step budget had it).

The tasks take their schedule as a :class:`Schedule`, a small factory configured in YAML by
``class_path``/``init_args`` (:class:`OneCycle`, :class:`Cosine`, :class:`MultiStep`)::

    scheduler:
      class_path: pc3d.tasks.schedules.OneCycle
      init_args: {final_div_factor: 100.0}

``configure_optimizers`` calls it with the optimizer and the trainer's budget
(:func:`trainer_budget`) and hands the scheduler to Lightning, stepped every ``interval``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from torch.optim.lr_scheduler import LRScheduler

__all__ = ["BudgetSchedule", "Cosine", "MultiStep", "OneCycle", "Schedule", "trainer_budget"]

SHAPES = ("onecycle", "cosine")


def _cos_interp(start: float, end: float, frac: float) -> float:
    """Cosine interpolation from ``start`` (frac 0) to ``end`` (frac 1)."""
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * min(max(frac, 0.0), 1.0)))


class BudgetSchedule(LRScheduler):
    """Per-step schedule over the training budget (step it after every optimizer step).

    Progress ``p = min(1, step / (total_steps - 1))``.

    Shapes:
        ``"cosine"``: ``lr = base_lr * (1 + cos(pi p)) / 2`` (to 0).
        ``"onecycle"``: torch's ``OneCycleLR`` with cosine annealing, over ``p`` instead of steps: from
        ``base_lr / div_factor`` up to ``base_lr`` during the first ``pct_start`` of the budget, then down
        to ``base_lr / (div_factor * final_div_factor)``; with Adam-style ``betas``, ``beta1`` cycles
        from ``max_momentum`` down to ``base_momentum`` and back (torch's ``cycle_momentum``).

    Args:
        optimizer: its groups' ``lr`` at construction are the peak (``base``) learning rates.
        shape: ``"onecycle"`` or ``"cosine"``.
        total_steps: the step budget.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        shape: str,
        total_steps: float,
        pct_start: float = 0.05,
        div_factor: float = 10.0,
        final_div_factor: float = 1000.0,
        base_momentum: float = 0.85,
        max_momentum: float = 0.95,
        last_epoch: int = -1,
    ) -> None:
        if shape not in SHAPES:
            raise ValueError(f"shape: expected one of {SHAPES}, got {shape!r}")
        if not (total_steps > 0 and math.isfinite(total_steps)):
            raise ValueError(f"total_steps: expected a finite step budget > 0, got {total_steps}")
        if not 0.0 <= pct_start < 1.0:
            raise ValueError(f"pct_start: expected a fraction in [0, 1), got {pct_start}")
        if div_factor <= 0 or final_div_factor <= 0:
            raise ValueError(
                f"div_factor, final_div_factor: expected positive factors, got {div_factor}, {final_div_factor}"
            )
        self.shape, self.total_steps = shape, float(total_steps)
        self.pct_start, self.div_factor, self.final_div_factor = pct_start, div_factor, final_div_factor
        self.base_momentum, self.max_momentum = base_momentum, max_momentum
        self.cycle_momentum = shape == "onecycle" and all("betas" in g for g in optimizer.param_groups)
        super().__init__(optimizer, last_epoch)

    def progress(self) -> float:
        """Share of the budget used, in ``[0, 1]``."""
        if self.total_steps <= 1:  # a single step: the schedule ends after it
            return 1.0 if self.last_epoch > 0 else 0.0
        return min(1.0, max(self.last_epoch / (self.total_steps - 1), 0.0))

    def get_lr(self) -> list[float]:
        p = self.progress()
        if self.shape == "cosine":
            return [base * _cos_interp(1.0, 0.0, p) for base in self.base_lrs]
        warm = self.pct_start
        lrs = []
        for base in self.base_lrs:
            start = base / self.div_factor
            if p < warm:
                lrs.append(_cos_interp(start, base, p / warm))
            else:
                end = start / self.final_div_factor
                lrs.append(_cos_interp(base, end, (p - warm) / (1.0 - warm)))
        if self.cycle_momentum:
            lo, hi = self.base_momentum, self.max_momentum
            beta1 = (
                _cos_interp(hi, lo, p / warm) if p < warm else _cos_interp(lo, hi, (p - warm) / (1.0 - warm))
            )
            for group in self.optimizer.param_groups:
                group["betas"] = (beta1, *group["betas"][1:])
        return lrs

    def state_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "optimizer"}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # the "time_fraction" entry of older checkpoints is ignored: schedules follow the step budget only
        self.__dict__.update({k: v for k, v in state_dict.items() if k != "time_fraction"})


def trainer_budget(trainer: L.Trainer | None) -> float:
    """The step budget of a trainer (``trainer.estimated_stepping_batches``), for :class:`BudgetSchedule`.

    Raises:
        ValueError: no trainer, or no step or epoch limit (``max_time`` alone is not a budget).
    """
    if trainer is None:
        raise ValueError("schedule: the learning-rate schedule needs the module to be attached to a Trainer")
    total = float(trainer.estimated_stepping_batches)
    if not math.isfinite(total):
        raise ValueError(
            "schedule: the trainer has no step budget to schedule over; set trainer.max_steps or "
            "trainer.max_epochs (max_time is a safety stop, not a budget), or use scheduler: null"
        )
    return total


class Schedule(ABC):
    """A learning-rate schedule for a task's ``configure_optimizers``.

    ``schedule(optimizer, total_steps)`` returns the scheduler, stepped every :attr:`interval`
    (``"step"`` or ``"epoch"``). ``total_steps`` is the trainer's step budget (:func:`trainer_budget`);
    a schedule with :attr:`uses_budget` ``False`` does not read it (the task then passes ``math.inf``,
    and the trainer needs no limit).
    """

    interval: str = "step"
    uses_budget: bool = True

    @abstractmethod
    def __call__(self, optimizer: torch.optim.Optimizer, total_steps: float) -> LRScheduler:
        """The scheduler of ``optimizer`` for a budget of ``total_steps`` optimizer steps."""

    def lr_scheduler_config(
        self, optimizer: torch.optim.Optimizer, trainer: L.Trainer | None
    ) -> dict[str, Any]:
        """Lightning's ``lr_scheduler`` entry for ``optimizer`` under ``trainer``'s budget."""
        total = trainer_budget(trainer) if self.uses_budget else math.inf
        return {"scheduler": self(optimizer, total), "interval": self.interval}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class OneCycle(Schedule):
    """:class:`BudgetSchedule` ``"onecycle"`` (Pointcept's OneCycle) over the training budget.

    The warm-up is ``min(max(pct_start, 2 / total_steps), 0.5)`` of the budget: at least two steps
    in short runs, at most half of them.
    """

    def __init__(
        self,
        pct_start: float = 0.05,
        div_factor: float = 10.0,
        final_div_factor: float = 1000.0,
        base_momentum: float = 0.85,
        max_momentum: float = 0.95,
    ) -> None:
        if not 0.0 <= pct_start < 1.0:
            raise ValueError(f"pct_start: expected a fraction in [0, 1), got {pct_start}")
        if div_factor <= 0 or final_div_factor <= 0:
            raise ValueError(
                f"div_factor, final_div_factor: expected positive factors, got {div_factor}, {final_div_factor}"
            )
        self.pct_start, self.div_factor, self.final_div_factor = pct_start, div_factor, final_div_factor
        self.base_momentum, self.max_momentum = base_momentum, max_momentum

    def __call__(self, optimizer: torch.optim.Optimizer, total_steps: float) -> BudgetSchedule:
        warm = min(max(self.pct_start, 2.0 / total_steps), 0.5)  # a warm-up of >= 2 steps in short runs
        return BudgetSchedule(
            optimizer,
            "onecycle",
            total_steps,
            pct_start=warm,
            div_factor=self.div_factor,
            final_div_factor=self.final_div_factor,
            base_momentum=self.base_momentum,
            max_momentum=self.max_momentum,
        )


class Cosine(Schedule):
    """:class:`BudgetSchedule` ``"cosine"``: from the optimizer's learning rates to 0 over the budget."""

    def __call__(self, optimizer: torch.optim.Optimizer, total_steps: float) -> BudgetSchedule:
        return BudgetSchedule(optimizer, "cosine", total_steps)


class MultiStep(Schedule):
    """Step decay per epoch: the learning rate times ``gamma`` at each of the ``milestones`` epochs
    (torch's ``MultiStepLR``)."""

    interval = "epoch"
    uses_budget = False

    def __init__(self, milestones: Sequence[int] = (32, 40), gamma: float = 0.3) -> None:
        self.milestones, self.gamma = [int(m) for m in milestones], float(gamma)
        if any(m < 1 for m in self.milestones) or self.milestones != sorted(self.milestones):
            raise ValueError(f"milestones: expected increasing positive epochs, got {list(milestones)}")
        if self.gamma <= 0:
            raise ValueError(f"gamma: expected a positive factor, got {gamma}")

    def __call__(
        self, optimizer: torch.optim.Optimizer, total_steps: float
    ) -> torch.optim.lr_scheduler.MultiStepLR:
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, list(self.milestones), gamma=self.gamma)
