"""Differentiable gathering and three-point interpolation (torch ops; any device)."""

from __future__ import annotations

import torch
from torch import Tensor


def _check_index(idx: Tensor, n: int, name: str) -> None:
    if not isinstance(idx, Tensor) or idx.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"{name}: expected an integer tensor, got {getattr(idx, 'dtype', type(idx))}")
    if idx.numel():
        lo, hi = torch.aminmax(idx)
        if int(lo) < 0 or int(hi) >= n:
            raise ValueError(f"{name}: indices must lie in [0, {n}), got [{int(lo)}, {int(hi)}]")


def gather_points(feat: Tensor, idx: Tensor) -> Tensor:
    """``feat (N, C)`` rows at ``idx (...)`` -> ``(..., C)``; gradient flows to ``feat`` (index_add).

    Use it for grouping: ``gather_points(feat, ball_query(...))`` is ``(M, k, C)``.
    """
    if not isinstance(feat, Tensor) or feat.dim() != 2:
        raise ValueError(f"feat: expected a (N, C) tensor, got {getattr(feat, 'shape', type(feat))}")
    _check_index(idx, feat.shape[0], "idx")
    flat = idx.reshape(-1).to(device=feat.device, dtype=torch.int64)
    return feat.index_select(0, flat).reshape(*idx.shape, feat.shape[1])


def three_interpolate(feat: Tensor, idx: Tensor, weight: Tensor) -> Tensor:
    """``out[m] = sum_j weight[m, j] * feat[idx[m, j]]``: ``feat (N, C)``, ``idx/weight (M, 3)`` -> ``(M, C)``.

    Differentiable in ``feat`` and ``weight`` (mmdet3d only propagates to ``feat``).
    """
    if not isinstance(weight, Tensor) or weight.dim() != 2 or tuple(weight.shape) != tuple(idx.shape):
        raise ValueError(f"weight: expected shape {tuple(idx.shape)}, got {getattr(weight, 'shape', None)}")
    g = gather_points(feat, idx)  # (M, 3, C)
    return torch.einsum("mkc,mk->mc", g, weight.to(feat.dtype))
