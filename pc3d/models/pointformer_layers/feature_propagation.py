"""PointNet++ feature propagation (3-NN inverse-distance interpolation + shared MLP)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .grouping import interpolate


def mlp(channels: Sequence[int]) -> nn.Sequential:
    """``Linear(no bias) -> BN -> ReLU`` for each consecutive pair of ``channels``."""
    layers: list[nn.Module] = []
    for a, b in zip(channels[:-1], channels[1:]):
        layers += [nn.Linear(a, b, bias=False), nn.BatchNorm1d(b), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class FeaturePropagation(nn.Module):
    """Interpolate coarse features onto finer points, concatenate the fine skip features, apply an MLP.

    ``channels = [C_skip + C_coarse, h1, ..., h_out]``. ``forward(fine_xyz (Nf,3), fine_offsets,
    fine_feat (Nf,C_skip), coarse_xyz (Nc,3), coarse_offsets, coarse_feat (Nc,C_coarse)) -> (Nf, h_out)``.
    """

    def __init__(self, channels: Sequence[int]) -> None:
        super().__init__()
        if len(channels) < 2:
            raise ValueError(f"channels: expected at least [in, out], got {list(channels)}")
        self.mlp = mlp(channels)

    def forward(
        self,
        fine_xyz: Tensor,
        fine_offsets: Tensor,
        fine_feat: Tensor | None,
        coarse_xyz: Tensor,
        coarse_offsets: Tensor,
        coarse_feat: Tensor,
    ) -> Tensor:
        x = interpolate(fine_xyz, fine_offsets, coarse_xyz, coarse_offsets, coarse_feat)
        if fine_feat is not None:
            x = torch.cat([fine_feat, x], 1)
        return self.mlp(x)
