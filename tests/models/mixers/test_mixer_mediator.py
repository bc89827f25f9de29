"""MediatorAttention: pooled mediator tokens between the queries and the keys, global per cloud."""

from __future__ import annotations

import math

import pytest
import torch
from mixer_checks import (
    check_batch_invariance,
    check_unet,
    cloud,
    level,
    logits,
    overfit_scene0000_crop,
    small_unet,
)

from pc3d.models.mixers.mediator import MediatorAttention, set_num_mediators


def _qkv(mixer: MediatorAttention, x: torch.Tensor) -> list[torch.Tensor]:
    """Per-head ``Q, K, V (H, N, d)`` in storage order."""
    n, c = x.shape
    return list(mixer.qkv(x).reshape(n, 3, mixer.num_heads, -1).permute(1, 2, 0, 3))


def _reference(mixer: MediatorAttention, x: torch.Tensor, point, order_index: int) -> torch.Tensor:
    """Explicit softmax matrices, one cloud and one head at a time, mediators averaged by hand."""
    q, k, v = _qkv(mixer, x)
    s, m = mixer.scale, mixer.num_mediators
    out = torch.zeros_like(q)
    offsets = point.offsets.tolist()
    for b in range(len(offsets) - 1):
        rows = point.order[order_index][offsets[b] : offsets[b + 1]]  # the cloud along the curve
        n = rows.numel()
        a = min(m, n)
        stretches = [range(math.floor(t * n / a), math.ceil((t + 1) * n / a)) for t in range(a)]
        for h in range(mixer.num_heads):
            qc, kc, vc = q[h, rows], k[h, rows], v[h, rows]
            t = torch.stack([qc[list(r)].mean(0) for r in stretches])  # (a, d)
            to_keys = torch.softmax(s * t @ kc.T, dim=1)  # (a, n): each mediator over the cloud's keys
            to_mediators = torch.softmax(s * qc @ t.T, dim=1)  # (n, a): each query over the mediators
            out[h, rows] = to_mediators @ (to_keys @ vc)
    return mixer.proj(out.transpose(0, 1).reshape(x.shape))


def _mixer(num_mediators: int, channels: int = 8, num_heads: int = 2) -> MediatorAttention:
    torch.manual_seed(0)
    return MediatorAttention(channels, num_heads, num_mediators=num_mediators).eval()


def test_mediator_attention_matches_explicit_softmax_matrices_per_cloud():
    point = level([37, 12, 1, 3], seed=3)
    x = torch.randn(point.num_points, 8, generator=torch.Generator().manual_seed(1))
    mixer = _mixer(4)
    with torch.no_grad():
        for order_index in (0, 2):
            out = mixer(x, point, order_index)
            torch.testing.assert_close(out, _reference(mixer, x, point, order_index), rtol=1e-5, atol=1e-5)
        # the curve decides the mediators: another curve gives another output on the large cloud
        assert not torch.allclose(mixer(x, point, 0)[:37], mixer(x, point, 1)[:37], atol=1e-4)


def test_one_mediator_per_row_is_two_chained_softmax_attentions():
    """With ``m >= n`` every query is a mediator: ``softmax(s Q Q^T) softmax(s Q K^T) V`` on any curve."""
    point = level([30, 9, 1], seed=4)
    x = torch.randn(point.num_points, 8, generator=torch.Generator().manual_seed(2))
    mixer = _mixer(30)
    q, k, v = _qkv(mixer, x)
    s = mixer.scale
    ref = torch.zeros_like(q)
    for a, e in [(0, 30), (30, 39), (39, 40)]:
        qc, kc, vc = q[:, a:e], k[:, a:e], v[:, a:e]
        ref[:, a:e] = (
            (s * qc @ qc.transpose(1, 2)).softmax(-1) @ (s * qc @ kc.transpose(1, 2)).softmax(-1) @ vc
        )
    ref = mixer.proj(ref.transpose(0, 1).reshape(x.shape))
    with torch.no_grad():
        for order_index in range(4):
            torch.testing.assert_close(mixer(x, point, order_index), ref, rtol=1e-5, atol=1e-5)
        mixer.num_mediators = 1000
        torch.testing.assert_close(mixer(x, point, 1), ref, rtol=1e-5, atol=1e-5)


def test_one_mediator_is_attention_pooling_with_the_mean_query():
    """With ``m = 1`` every row of a cloud gets ``softmax(s mean(Q) K^T) V``."""
    point = level([25, 6], seed=5)
    x = torch.randn(31, 8, generator=torch.Generator().manual_seed(3))
    mixer = _mixer(1)
    q, k, v = _qkv(mixer, x)
    with torch.no_grad():
        out = mixer(x, point, 0)
        for a, e in [(0, 25), (25, 31)]:
            pooled = (mixer.scale * q[:, a:e].mean(1, keepdim=True) @ k[:, a:e].transpose(1, 2)).softmax(-1)
            ref = mixer.proj((pooled @ v[:, a:e]).transpose(0, 1).reshape(1, 8))
            torch.testing.assert_close(out[a:e], ref.expand(e - a, 8), rtol=1e-5, atol=1e-5)


def test_mediator_unet_keeps_clouds_apart_and_trains():
    model = small_unet(MediatorAttention, {"num_mediators": 4})
    check_unet(model)


def test_mediator_count_changes_on_a_built_model():
    model = small_unet(MediatorAttention, {"num_mediators": 4})
    coord, feat = cloud(300, 8)
    offsets = torch.tensor([0, 300])
    with torch.no_grad():
        before = logits(model, coord, feat, offsets)
        assert set_num_mediators(model, 9) == 6  # one mixer per block of the small U-Net
        assert all(m.num_mediators == 9 for m in model.modules() if isinstance(m, MediatorAttention))
        after = logits(model, coord, feat, offsets)
    assert torch.isfinite(after).all()
    assert (after - before).abs().max() > 1e-4, "the mediator count has no effect"
    check_batch_invariance(model)
    set_num_mediators(model, 4)
    with torch.no_grad():
        torch.testing.assert_close(logits(model, coord, feat, offsets), before)
    with pytest.raises(ValueError, match="num_mediators"):
        set_num_mediators(model, 0)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(channels=8, num_heads=3), "num_heads"),
        (dict(channels=8, num_heads=0), "num_heads"),
        (dict(channels=0), "channels"),
        (dict(channels=8, num_mediators=0), "num_mediators"),
        (dict(channels=8, num_mediators=2.5), "num_mediators"),
        (dict(channels=8, num_mediators=True), "num_mediators"),
        (dict(channels=8, qk_scale=-1.0), "qk_scale"),
    ],
)
def test_mediator_attention_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        MediatorAttention(**kwargs)


@pytest.mark.slow
@pytest.mark.samples
def test_mediator_overfits_a_real_crop(samples_dir):
    assert overfit_scene0000_crop(samples_dir, MediatorAttention, {"num_mediators": 16}) >= 0.9
