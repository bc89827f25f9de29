"""PointNet++ single-scale set abstraction on packed point sets (used by the PointRCNN refinement stage)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from pc3d.kernels.packing import batch_index

from .feature_propagation import mlp
from .grouping import group, sample

#: Grouped rows (centres x samples) per chunk of an inference forward.
INFERENCE_CHUNK_ROWS = 2048


class SetAbstraction(nn.Module):
    """D-FPS ``num_points`` centres per set, ball-query ``num_samples`` members within ``radius``, shared MLP on
    ``[relative xyz (/ radius if normalize_xyz), features]``, max-pool.

    ``num_points=None`` is the global variant: one centre per set (the origin), all points grouped.
    ``forward(xyz (N,3), feat (N,C), offsets (B+1,))`` -> ``(new_xyz (S,3), new_feat (S,C_out), new_offsets)``.

    The MLP's first layer is linear, so it runs once per point instead of once per grouped row:
    ``W [x_j - c_i, f_j] = W [x_j, f_j] - W_xyz c_i`` (coordinates taken relative to each set's mean,
    which keeps the difference exact to float rounding). Without autograd and in eval mode the
    remaining layers run once per distinct group (centres duplicated with their members, e.g. RoIs
    pooled from few points, share one result) and over ``INFERENCE_CHUNK_ROWS`` grouped rows at a
    time (batch norm then acts per row, so chunks give the same result with a small working set).
    """

    def __init__(
        self,
        in_channels: int,
        channels: Sequence[int],
        num_points: int | None,
        radius: float = 1.0,
        num_samples: int = 32,
        normalize_xyz: bool = False,
    ) -> None:
        super().__init__()
        self.num_points, self.radius, self.num_samples = num_points, radius, num_samples
        self.normalize_xyz = normalize_xyz
        self.mlp = mlp([in_channels + 3, *channels])
        self.out_channels = channels[-1]

    def forward(self, xyz: Tensor, feat: Tensor, offsets: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if self.num_points is None:
            counts = offsets[1:] - offsets[:-1]
            b = counts.numel()
            seg = batch_index(offsets)
            h = self.mlp(torch.cat([xyz, feat], 1))
            out = h.new_full((b, h.shape[1]), float("-inf")).scatter_reduce(
                0, seg[:, None].expand_as(h), h, "amax", include_self=True
            )
            new_off = torch.arange(b + 1, device=xyz.device)
            return xyz.new_zeros(b, 3), out, new_off
        idx, new_off = sample(xyz, offsets, self.num_points)
        centers = xyz[idx]
        nbr = group(xyz, offsets, centers, new_off, self.radius, self.num_samples)
        point_term, center_term = self._first_layer(xyz, feat, offsets, centers, new_off)
        rest = self.mlp[1:]
        if torch.is_grad_enabled() or self.training:  # batch-norm statistics span every grouped row
            return centers, self._pool(rest, point_term, center_term, nbr), new_off
        first, inverse = _distinct_groups(centers, nbr)
        nbr_u, center_u = nbr[first], center_term[first]
        step = max(1, INFERENCE_CHUNK_ROWS // self.num_samples)
        parts = [
            self._pool(rest, point_term, center_u[i : i + step], nbr_u[i : i + step])
            for i in range(0, len(nbr_u), step)
        ]
        h = torch.cat(parts) if parts else point_term.new_zeros(0, self.out_channels)
        return centers, h[inverse], new_off

    def _first_layer(
        self, xyz: Tensor, feat: Tensor, offsets: Tensor, centers: Tensor, center_offsets: Tensor
    ) -> tuple[Tensor, Tensor]:
        """``(point term (N, C1), centre term (S, C1))`` of the first linear layer on grouped rows."""
        weight = self.mlp[0].weight  # (C1, 3 + C)
        w_xyz = weight[:, :3] / self.radius if self.normalize_xyz else weight[:, :3]
        counts = offsets[1:] - offsets[:-1]
        set_of_point = batch_index(offsets)
        mean = torch.zeros(len(counts), 3, dtype=xyz.dtype, device=xyz.device)
        mean = mean.index_add_(0, set_of_point, xyz.detach()) / counts.clamp_min(1)[:, None].to(xyz.dtype)
        set_of_center = batch_index(center_offsets)
        point_term = (xyz - mean[set_of_point]) @ w_xyz.T + feat @ weight[:, 3:].T
        center_term = (centers - mean[set_of_center]) @ w_xyz.T
        return point_term, center_term

    @staticmethod
    def _pool(rest: nn.Module, point_term: Tensor, center_term: Tensor, nbr: Tensor) -> Tensor:
        """Max over each centre's group of ``rest(point_term[nbr] - center_term)``; ``(S, C_out)``."""
        s, k = nbr.shape
        h = point_term[nbr] - center_term.unsqueeze(1)
        return rest(h.reshape(s * k, -1)).reshape(s, k, -1).max(1).values


def _distinct_groups(centers: Tensor, nbr: Tensor) -> tuple[Tensor, Tensor]:
    """``(first (U,), inverse (S,))``: one representative per distinct (centre, members) group.

    Centres at the same position with the same members (duplicated points, as in the PointRCNN
    RoI pooling of boxes with few points) have the same output: ``out[first][inverse] == out``.
    """
    s = len(nbr)
    if s == 0:
        empty = torch.zeros(0, dtype=torch.long, device=nbr.device)
        return empty, empty
    key = torch.cat([nbr, centers.detach().contiguous().view(torch.int32).long()], 1)
    _, inverse = torch.unique(key, dim=0, return_inverse=True)
    first = torch.full((int(inverse.max()) + 1,), s, dtype=torch.long, device=nbr.device)
    first = first.scatter_reduce(0, inverse, torch.arange(s, device=nbr.device), "amin")
    return first, inverse
