"""The benchmarks' per-component timer: hooked modules and wrapped functions accumulate their own time."""

import time

import pytest
import torch
from torch import nn

from pc3d.tools.bench.component_timer import ComponentTimer


class Sleepy(nn.Module):
    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.seconds)
        return x


def test_hooks_and_wrapped_functions_accumulate_per_component() -> None:
    timer = ComponentTimer(["slow", "fast", "fn"])
    slow, fast = Sleepy(0.03), Sleepy(0.0)
    timer.hook(slow, "slow")
    timer.hook(fast, "fast")
    napping = timer.wrap(lambda s: time.sleep(s), "fn")
    x = torch.zeros(1)
    for _ in range(2):
        fast(slow(x))
    napping(0.02)
    assert timer.t["slow"] >= 0.06  # two calls of a 30 ms module
    assert timer.t["fn"] >= 0.02
    assert timer.t["fast"] < timer.t["slow"] / 2  # no time leaks between hooked modules
    assert timer.shares(2.0) == pytest.approx({k: v / 2 for k, v in timer.t.items()})


def test_unknown_component_names_are_rejected() -> None:
    timer = ComponentTimer(["a"])
    with pytest.raises(ValueError, match="name: expected one of"):
        timer.hook(nn.Identity(), "b")
    with pytest.raises(ValueError, match="name: expected one of"):
        timer.wrap(print, "b")
