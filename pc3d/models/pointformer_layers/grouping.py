"""Sampling and grouping on packed clouds through ``pc3d.kernels.points`` (FPS, ball query, 3-NN)."""

from __future__ import annotations

import importlib
from types import ModuleType

import torch
from torch import Tensor


def point_ops() -> ModuleType:
    """The ``pc3d.kernels.points`` module (imported on first use)."""
    return importlib.import_module("pc3d.kernels.points")


def sample(xyz: Tensor, offsets: Tensor, num_samples: int) -> tuple[Tensor, Tensor]:
    """D-FPS ``num_samples`` points per cloud.

    ``xyz (N, 3)``, ``offsets (B+1,)`` -> ``(idx (B*num_samples,) int64 global, new_offsets (B+1,))``.
    Raises ``ValueError`` when a cloud has fewer than ``num_samples`` points.
    """
    counts = offsets[1:] - offsets[:-1]
    if counts.numel() and int(counts.min()) < num_samples:
        raise ValueError(
            f"num_points: every cloud needs at least {num_samples} points to sample, "
            f"got clouds of {counts.tolist()} points"
        )
    with torch.no_grad():
        idx, new_offsets = point_ops().furthest_point_sample(xyz.detach(), offsets, num_samples)
    return idx.long(), new_offsets.long()


def group(
    xyz: Tensor, offsets: Tensor, centers: Tensor, center_offsets: Tensor, radius: float, k: int
) -> Tensor:
    """Ball-query ``k`` neighbours of every centre within ``radius`` (same cloud only).

    -> ``idx (M, k)`` int64 global indices into ``xyz``. Empty balls (impossible when the centres
    are points of ``xyz``) fall back to the nearest point of the centre's cloud.
    """
    with torch.no_grad():
        idx = (
            point_ops().ball_query(xyz.detach(), offsets, centers.detach(), center_offsets, radius, k).long()
        )
        empty = idx[:, 0] < 0
        if bool(empty.any()):
            nn_idx, _ = point_ops().knn(xyz.detach(), offsets, centers.detach(), center_offsets, 1)
            idx[empty] = nn_idx[empty, :1].long().expand(-1, k)
        bad = idx < 0
        if bool(bad.any()):
            idx = torch.where(bad, idx[:, :1].expand_as(idx), idx)
    return idx


def interpolate(
    unknown: Tensor, unknown_offsets: Tensor, known: Tensor, known_offsets: Tensor, known_feat: Tensor
) -> Tensor:
    """Inverse-distance 3-NN interpolation of ``known_feat (Nk, C)`` onto ``unknown (Nu, 3)``."""
    ops = point_ops()
    with torch.no_grad():
        idx, dist = ops.three_nn(known.detach(), known_offsets, unknown.detach(), unknown_offsets)
        recip = 1.0 / (dist + 1e-8)
        weight = recip / recip.sum(1, keepdim=True)
    return ops.three_interpolate(known_feat, idx.long(), weight.to(known_feat.dtype))
