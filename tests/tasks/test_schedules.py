"""BudgetSchedule: torch OneCycleLR's shape over steps, step budgets only (never the clock), checkpointing."""

from __future__ import annotations

import io
import math

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from pc3d.tasks.schedules import BudgetSchedule, trainer_budget


def _opt(lr: float = 0.01) -> torch.optim.Optimizer:
    return torch.optim.AdamW([torch.nn.Parameter(torch.zeros(3))], lr=lr)


def _lrs(sched: BudgetSchedule, steps: int) -> list[float]:
    out = []
    for _ in range(steps):
        out.append(sched.optimizer.param_groups[0]["lr"])
        sched.optimizer.step()
        sched.step()
    return out


def test_onecycle_follows_torch_over_steps():
    total = 400
    ours = _lrs(BudgetSchedule(_opt(), "onecycle", total, pct_start=0.05), total)
    ref_opt = _opt()
    ref = torch.optim.lr_scheduler.OneCycleLR(
        ref_opt, max_lr=0.01, total_steps=total, pct_start=0.05, div_factor=10.0, final_div_factor=1000.0
    )
    theirs = []
    for _ in range(total):
        theirs.append(ref_opt.param_groups[0]["lr"])
        ref_opt.step()
        ref.step()
    assert ours[0] == pytest.approx(theirs[0]) == pytest.approx(0.001)
    assert max(ours) == pytest.approx(0.01, rel=1e-3)
    assert ours[-1] == pytest.approx(theirs[-1], rel=1e-6) == pytest.approx(1e-6)
    # torch ends the warm-up one step earlier (at pct_start * total - 1); otherwise the same curve
    assert max(abs(a - b) for a, b in zip(ours, theirs)) < 0.05 * 0.01


def test_onecycle_cycles_adam_beta1():
    sched = BudgetSchedule(_opt(), "onecycle", 100, pct_start=0.2)
    betas = []
    for _ in range(100):
        betas.append(sched.optimizer.param_groups[0]["betas"][0])
        sched.optimizer.step()
        sched.step()
    assert betas[0] == pytest.approx(0.95)
    assert min(betas) == pytest.approx(0.85, abs=1e-3)
    assert betas[-1] == pytest.approx(0.95)


def test_cosine_ends_at_zero_and_one_step_runs_start_at_the_warm_up_lr():
    sched = BudgetSchedule(_opt(), "cosine", 11)
    assert _lrs(sched, 11)[-1] == pytest.approx(0.0, abs=1e-12)
    one = BudgetSchedule(_opt(), "onecycle", 1)  # a one-step run (smoke tests) starts at the warm-up lr
    assert _lrs(one, 2) == pytest.approx([0.001, 1e-6])


def test_state_dict_loads_weights_only_and_older_clock_entries_are_ignored():
    sched = BudgetSchedule(_opt(), "onecycle", 50)
    _lrs(sched, 5)
    buf = io.BytesIO()
    torch.save(sched.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    assert state["last_epoch"] == 5
    fresh = BudgetSchedule(_opt(), "onecycle", 50)
    fresh.load_state_dict({**state, "time_fraction": None})  # as older checkpoints may carry
    assert fresh.last_epoch == 5 and not hasattr(fresh, "time_fraction")
    assert fresh.progress() == sched.progress() and fresh.get_lr() == pytest.approx(sched.get_lr())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"shape": "linear"}, "shape"),
        ({"total_steps": 0}, "total_steps"),
        ({"total_steps": math.inf}, "finite step budget"),
        ({"pct_start": 1.0}, "pct_start"),
    ],
)
def test_bad_arguments(kwargs, match):
    args = {"shape": "onecycle", "total_steps": 10} | kwargs
    with pytest.raises(ValueError, match=match):
        BudgetSchedule(_opt(), **args)


class _Tiny(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        self.lrs: list[float] = []

    def training_step(self, batch, batch_idx):
        self.lrs.append(self.trainer.optimizers[0].param_groups[0]["lr"])
        return self.layer(batch).square().mean()

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=0.1)
        sched = BudgetSchedule(opt, "cosine", trainer_budget(self.trainer))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def _trainer(tmp_path, **kw) -> L.Trainer:
    return L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                     enable_model_summary=False, default_root_dir=tmp_path, **kw)  # fmt: skip


def test_max_time_does_not_change_the_learning_rates(tmp_path):
    """The schedule follows the step budget only: a max_time on top (never reached here, but read by
    nothing) gives the same learning rates step by step, whatever the machine's speed."""
    loader = DataLoader(torch.randn(8, 2), batch_size=2)
    plain, timed = _Tiny(), _Tiny()
    _trainer(tmp_path, max_steps=12).fit(plain, loader)
    _trainer(tmp_path, max_steps=12, max_time={"minutes": 30}).fit(timed, loader)
    assert len(plain.lrs) == 12 and plain.lrs == timed.lrs
    assert plain.lrs[0] == pytest.approx(0.1) and plain.lrs[-1] == pytest.approx(0.0, abs=1e-12)


def test_max_time_alone_is_not_a_budget(tmp_path):
    with pytest.raises(ValueError, match="no step budget.*max_time is a safety stop"):
        _trainer(tmp_path, max_epochs=-1, max_time={"seconds": 5}).fit(
            _Tiny(), DataLoader(torch.randn(4, 2), batch_size=2)
        )


def test_unbounded_trainer_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="max_steps or trainer.max_epochs"):
        _trainer(tmp_path, max_epochs=-1).fit(_Tiny(), DataLoader(torch.randn(4, 2), batch_size=2))
