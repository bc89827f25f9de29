"""Wall time per model component, accumulated by forward hooks (and wrapped functions) over one forward."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from torch import nn


class ComponentTimer:
    """Accumulates wall time per named component.

    ``hook(module, name)`` times every call of ``module``; ``wrap(fn, name)`` returns a timed ``fn``.
    Nested components are counted in both; hook disjoint modules when shares must add up to <= 100%.
    """

    def __init__(self, components: Sequence[str]) -> None:
        self.t = dict.fromkeys(components, 0.0)
        self._start: dict[int, float] = {}

    def hook(self, module: nn.Module, name: str) -> None:
        if name not in self.t:
            raise ValueError(f"name: expected one of {list(self.t)}, got {name!r}")

        def pre(mod: nn.Module, args: Any) -> None:
            self._start[id(mod)] = time.perf_counter()

        def post(mod: nn.Module, args: Any, out: Any) -> None:
            self.t[name] += time.perf_counter() - self._start.pop(id(mod))

        module.register_forward_pre_hook(pre)
        module.register_forward_hook(post)

    def wrap(self, fn: Callable, name: str) -> Callable:
        if name not in self.t:
            raise ValueError(f"name: expected one of {list(self.t)}, got {name!r}")

        def inner(*a: Any, **k: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.t[name] += time.perf_counter() - t0

        return inner

    def shares(self, total: float) -> dict[str, float]:
        """Each component's fraction of ``total`` seconds."""
        return {k: v / total for k, v in self.t.items()}
