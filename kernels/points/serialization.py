"""Space-filling-curve serialization of voxel grids (PTv3 / Pointcept semantics).

``code = batch << (3 * depth) | spatial_code`` with, for grid coordinates ``(x, y, z)`` in
``[0, 2^depth)``:

* ``"z"``: Morton code, bit ``i`` of x at position ``3i+2``, of y at ``3i+1``, of z at ``3i``.
* ``"hilbert"``: 3-D Hilbert index with ``depth`` bits per axis (Skilling's transform as in
  numpy-hilbert-curve, which Pointcept ports): consecutive codes are face-adjacent cells.
* ``"z-trans"`` / ``"hilbert-trans"``: the same curves applied to ``(y, x, z)`` (Pointcept's
  ``grid_coord[:, [1, 0, 2]]``: the x and y axes are swapped).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from ._common import as_tensor, check_backend, numba_threads
from ._serial_numba import encode as _encode_numba
from ._serial_numba import invert_permutation, radix_argsort

ORDERS = ("z", "z-trans", "hilbert", "hilbert-trans")


def _spread3_t(v: Tensor) -> Tensor:
    v = v & 0x1FFFFF
    v = (v | (v << 32)) & 0x1F00000000FFFF
    v = (v | (v << 16)) & 0x1F0000FF0000FF
    v = (v | (v << 8)) & 0x100F00F00F00F00F
    v = (v | (v << 4)) & 0x10C30C30C30C30C3
    v = (v | (v << 2)) & 0x1249249249249249
    return v


def _hilbert_t(x: Tensor, y: Tensor, z: Tensor, depth: int) -> Tensor:
    x, y, z = x.clone(), y.clone(), z.clone()
    for q in range(depth - 1, 0, -1):
        bq, p = 1 << q, (1 << q) - 1
        x = torch.where((x & bq) != 0, x ^ p, x)
        for other in (y, z):
            on = (other & bq) != 0
            t = torch.where(on, torch.zeros_like(x), (x ^ other) & p)
            x ^= torch.where(on, p, 0)
            x ^= t
            other ^= t
    g = torch.zeros_like(x)
    for lvl in range(depth - 1, -1, -1):
        g = (g << 3) | (((x >> lvl) & 1) << 2) | (((y >> lvl) & 1) << 1) | ((z >> lvl) & 1)
    for s in (1, 2, 4, 8, 16, 32):
        g ^= g >> s
    return g


def _encode_torch(grid: Tensor, batch: Tensor, order: str, depth: int) -> Tensor:
    g = grid.long()
    x, y, z = g[:, 0], g[:, 1], g[:, 2]
    if order.endswith("-trans"):
        x, y = y, x
    if order.startswith("z"):
        code = (_spread3_t(x) << 2) | (_spread3_t(y) << 1) | _spread3_t(z)
    else:
        code = _hilbert_t(x, y, z, depth)
    return (batch.long() << (3 * depth)) | code


def _minmax(x: Tensor) -> tuple[int, int]:
    if x.device.type == "cpu":  # numpy: single-threaded, no torch thread-pool launch
        a = x.numpy()
        return int(a.min()), int(a.max())
    lo, hi = torch.aminmax(x)
    return int(lo), int(hi)


def serialize(
    grid_coord: Tensor | np.ndarray,
    batch: Tensor | np.ndarray | None = None,
    order: str = "z",
    depth: int = 16,
    *,
    backend: str = "auto",
) -> Any:
    """Serialization codes of integer grid cells.

    Args:
        grid_coord: ``(N, 3)`` integer cell coordinates in ``[0, 2^depth)`` (e.g. from :func:`voxelize`).
        batch: ``(N,)`` non-negative integer cloud index (``None``: all zeros).
        order: one of ``"z"``, ``"z-trans"``, ``"hilbert"``, ``"hilbert-trans"``.
        depth: bits per axis, ``1 <= depth <= 16``; ``3 * depth + bit_length(max(batch)) <= 63``.

    Returns:
        ``code (N,)`` int64 (numpy when ``grid_coord`` is numpy). Within one depth the codes are a
        bijection between ``(batch, cell)`` pairs and integers; sorting them groups clouds.
    """
    g, was_np = as_tensor(grid_coord, "grid_coord")
    if g.dim() != 2 or g.shape[1] != 3:
        raise ValueError(f"grid_coord: expected shape (N, 3), got {tuple(g.shape)}")
    if g.is_floating_point() or g.dtype == torch.bool:
        raise ValueError(f"grid_coord: expected an integer tensor, got {g.dtype}")
    if order not in ORDERS:
        raise ValueError(f"order: expected one of {ORDERS}, got {order!r}")
    if not isinstance(depth, (int, np.integer)) or not 1 <= int(depth) <= 16:
        raise ValueError(f"depth: expected an int in [1, 16], got {depth!r}")
    depth = int(depth)
    n = g.shape[0]
    if batch is None:
        b = torch.zeros(n, dtype=torch.int64, device=g.device)
    else:
        b, _ = as_tensor(batch, "batch")
        if b.dim() != 1 or b.shape[0] != n:
            raise ValueError(f"batch: expected shape ({n},), got {tuple(b.shape)}")
        if b.is_floating_point() or b.dtype == torch.bool:
            raise ValueError(f"batch: expected an integer tensor, got {b.dtype}")
        b = b.to(g.device)
    if n:
        lo, hi = _minmax(g)
        if int(lo) < 0 or int(hi) >= (1 << depth):
            raise ValueError(f"grid_coord: values must lie in [0, 2^{depth}), got [{int(lo)}, {int(hi)}]")
        blo, bhi = _minmax(b)
        if int(blo) < 0:
            raise ValueError(f"batch: must be non-negative, got min {int(blo)}")
        if 3 * depth + int(bhi).bit_length() > 63:
            raise ValueError(f"batch: max {int(bhi)} does not fit above 3*depth={3 * depth} bits in int64")
    be = check_backend(backend, g)
    if be == "numba":
        with numba_threads((15.0 if order.startswith("hilbert") else 5.0) * n):
            code = torch.from_numpy(
                _encode_numba(g.contiguous().numpy(), b.contiguous().numpy(), ORDERS.index(order), depth)
            )
    else:
        code = _encode_torch(g, b, order, depth)
    return code.numpy() if was_np else code


def serialization_order(code: Tensor | np.ndarray) -> Any:
    """Sort order of codes and its inverse: ``order = argsort(code)`` (stable), ``inverse[order] = arange``.

    ``x[order]`` is the serialized sequence and ``y_sorted[inverse]`` undoes it. Returns
    ``(order (N,), inverse (N,))`` int64 (numpy when ``code`` is numpy).
    """
    c, was_np = as_tensor(code, "code")
    if c.dim() != 1 or c.is_floating_point():
        raise ValueError(f"code: expected a 1-D integer tensor, got {tuple(c.shape)} {c.dtype}")
    if c.device.type == "cpu" and c.numel() and int(c.min()) >= 0:
        a = c.to(torch.int64).contiguous().numpy()
        o = radix_argsort(a)
        with numba_threads(2.0 * o.shape[0]):
            inv = invert_permutation(o)
        order, inverse = torch.from_numpy(o), torch.from_numpy(inv)
    else:
        order = torch.sort(c, stable=True).indices
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(order.numel(), device=order.device)
    return (order.numpy(), inverse.numpy()) if was_np else (order, inverse)
