"""Input conversion and validation shared by the point ops (private)."""

from __future__ import annotations

import os
import types
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numba
import numpy as np
import torch
from torch import Tensor


def as_tensor(x: Any, name: str) -> tuple[Tensor, bool]:
    """Return ``(tensor, was_numpy)``; numpy arrays are wrapped without copying when possible."""
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x)), True
    if isinstance(x, Tensor):
        return x, False
    raise ValueError(f"{name}: expected a torch.Tensor or numpy array, got {type(x).__name__}")


@numba.njit(cache=True)
def _finite_flat(a):
    for i in range(a.shape[0]):
        if not np.isfinite(a[i]):
            return False
    return True


@numba.njit(cache=True)
def bbox3(a):
    """Per-axis ``(min, max)`` of a ``(N, 3)`` array, one pass (N >= 1)."""
    lo = np.empty(3)
    hi = np.empty(3)
    for d in range(3):
        lo[d] = a[0, d]
        hi[d] = a[0, d]
    for i in range(1, a.shape[0]):
        for d in range(3):
            v = a[i, d]
            if v < lo[d]:
                lo[d] = v
            if v > hi[d]:
                hi[d] = v
    return lo, hi


def _all_finite(x: Tensor) -> bool:
    # one numba pass on CPU: no temporary, no torch thread-pool launch
    if x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and x.is_contiguous():
        return bool(_finite_flat(x.detach().numpy().reshape(-1)))
    return bool(torch.isfinite(x).all())


def check_points(x: Tensor, name: str, dims: int = 3, finite: bool = True) -> Tensor:
    """Validate a float ``(N, dims)`` tensor (without NaN/inf if ``finite``); returns it contiguous."""
    if x.dim() != 2 or x.shape[1] != dims:
        raise ValueError(f"{name}: expected shape (N, {dims}), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor, got {x.dtype}")
    if finite and x.numel() and not _all_finite(x):
        raise ValueError(f"{name}: contains NaN or infinite coordinates")
    return x.contiguous()


def check_same_batch(a: Tensor, b: Tensor, name_a: str, name_b: str) -> None:
    if a.numel() != b.numel():
        raise ValueError(f"{name_b}: describes {b.numel() - 1} clouds but {name_a} describes {a.numel() - 1}")


def check_backend(backend: str, x: Tensor) -> str:
    """Resolve ``"auto"`` to ``"numba"`` on CPU and ``"torch"`` on other devices."""
    if backend not in ("auto", "numba", "torch"):
        raise ValueError(f"backend: expected 'auto', 'numba' or 'torch', got {backend!r}")
    if backend == "auto":
        return "numba" if x.device.type == "cpu" else "torch"
    if backend == "numba" and x.device.type != "cpu":
        raise ValueError(f"backend: 'numba' needs CPU tensors, got device {x.device}")
    return backend


_IMPORT_PID = os.getpid()
_THREADS: ContextVar[int | None] = ContextVar("pc3d_numba_threads", default=None)
_MODE: ContextVar[str] = ContextVar("pc3d_kernel_mode", default="auto")


@contextmanager
def numba_threads(work: float, min_work_per_thread: float = 2.5e7):
    """Let the :class:`ParallelKernel` calls inside use threads only when ``work`` is large.

    ``work`` is a rough count of inner-loop iterations (~1 ns each). A parallel region costs
    microseconds on an idle machine but 10-30 ms when the cores are shared with other
    processes (a thread that is not scheduled holds up the barrier while the others spin),
    so threads are only used for jobs of roughly 25 ms or more per thread; smaller jobs run
    the serial compilation of the kernel.
    """
    want = max(1, min(numba.get_num_threads(), int(work // min_work_per_thread)))
    token = _THREADS.set(want)
    try:
        yield
    finally:
        _THREADS.reset(token)


@contextmanager
def kernel_mode(mode: str):
    """Force ``"serial"`` or ``"parallel"`` kernels (``"auto"``: by work size). For tests and benchmarks."""
    if mode not in ("auto", "serial", "parallel"):
        raise ValueError(f"mode: expected 'auto', 'serial' or 'parallel', got {mode!r}")
    token = _MODE.set(mode)
    try:
        yield
    finally:
        _MODE.reset(token)


class ParallelKernel:
    """A ``numba.njit(parallel=True)`` kernel together with a serial compilation of the same code.

    The serial one runs for small jobs (see :func:`numba_threads`) and always in a process
    forked after this module was imported (e.g. DataLoader workers): numba's default OpenMP
    threading layer (GNU libgomp) aborts a forked child that enters a parallel region once the
    parent has used one ("fork() called from a process already using GNU OpenMP").
    """

    def __init__(self, dispatcher):
        self.parallel = dispatcher
        py = dispatcher.py_func
        f = types.FunctionType(
            py.__code__, py.__globals__, py.__name__ + "_serial", py.__defaults__, py.__closure__
        )
        f.__qualname__ = py.__qualname__ + "_serial"  # its own numba cache entry
        self.serial = numba.njit(cache=True)(f)
        self.__doc__ = py.__doc__
        self.__name__ = py.__name__

    def __call__(self, *args):
        if os.getpid() != _IMPORT_PID:
            return self.serial(*args)
        mode = _MODE.get()
        want = _THREADS.get()
        if mode == "serial" or (mode == "auto" and want is not None and want <= 1):
            return self.serial(*args)
        old = numba.get_num_threads()
        if mode == "auto" and want is not None:
            numba.set_num_threads(want)
        try:
            return self.parallel(*args)
        finally:
            numba.set_num_threads(old)
