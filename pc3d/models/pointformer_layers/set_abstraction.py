"""PointNet++ single-scale set abstraction on packed point sets (used by the PointRCNN refinement stage)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .feature_propagation import mlp
from .grouping import group, sample


class SetAbstraction(nn.Module):
    """D-FPS ``num_points`` centres per set, ball-query ``num_samples`` members within ``radius``, shared MLP on
    ``[relative xyz (/ radius if normalize_xyz), features]``, max-pool.

    ``num_points=None`` is the global variant: one centre per set (the origin), all points grouped.
    ``forward(xyz (N,3), feat (N,C), offsets (B+1,))`` -> ``(new_xyz (S,3), new_feat (S,C_out), new_offsets)``.
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
            seg = torch.repeat_interleave(torch.arange(b, device=xyz.device), counts)
            h = self.mlp(torch.cat([xyz, feat], 1))
            out = h.new_full((b, h.shape[1]), float("-inf")).scatter_reduce(
                0, seg[:, None].expand_as(h), h, "amax", include_self=True
            )
            new_off = torch.arange(b + 1, device=xyz.device)
            return xyz.new_zeros(b, 3), out, new_off
        idx, new_off = sample(xyz, offsets, self.num_points)
        centers = xyz[idx]
        nbr = group(xyz, offsets, centers, new_off, self.radius, self.num_samples)
        rel = xyz[nbr] - centers.unsqueeze(1)
        if self.normalize_xyz:
            rel = rel / self.radius
        g = torch.cat([rel, feat[nbr]], -1)
        s, k, c = g.shape
        h = self.mlp(g.reshape(s * k, c)).reshape(s, k, -1).max(1).values
        return centers, h, new_off
