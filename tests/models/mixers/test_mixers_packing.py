"""Every mixer alone on a level with empty, one-row and larger clouds: packed equals cloud by cloud."""

from __future__ import annotations

import pytest
import torch
from mixer_checks import level

from pc3d.models.mixers import (
    MLLA,
    AgentAttention,
    DeformableAttention,
    InLineAttention,
    MediatorAttention,
    SlideAttention,
)
from pc3d.models.point import build_points

MIXERS = [
    (AgentAttention, {"num_agents": 4}),
    (InLineAttention, {}),
    (MLLA, {}),
    (MediatorAttention, {"num_mediators": 4}),
    (SlideAttention, {"window_size": 5}),
    (DeformableAttention, {"num_refs": 4, "offset_range": 0.3}),
]


@pytest.mark.parametrize(("cls", "args"), MIXERS, ids=[c.__name__ for c, _ in MIXERS])
def test_mixer_alone_packed_equals_cloud_by_cloud(cls, args):
    torch.manual_seed(0)
    mixer = cls(channels=12, num_heads=2, **args).eval()
    sizes = [30, 0, 1, 12]
    packed_level = level(sizes, seed=5)
    x = torch.randn(sum(sizes), 12)
    with torch.no_grad():
        packed = mixer(x, packed_level, 1)
        start = 0
        for n in sizes:
            rows = slice(start, start + n)
            if n:  # the same voxels as a level of their own
                alone = build_points(
                    packed_level.coord[rows],
                    packed_level.grid_coord[rows],
                    torch.zeros(n, dtype=torch.long),
                    1,
                    packed_level.orders,
                )
                torch.testing.assert_close(mixer(x[rows], alone, 1), packed[rows], rtol=1e-4, atol=1e-5)
            start += n
    assert torch.isfinite(packed).all()
