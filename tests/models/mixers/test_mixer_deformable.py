"""DeformableAttention: DAT's deformable attention as a global point mixer, against a plain reference."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from mixer_checks import (
    check_unet,
    level,
    overfit_scene0000_crop,
    small_unet,
)

import pc3d.models.mixers.deformable as deformable
from pc3d.models.mixers.deformable import DeformableAttention
from pc3d.models.mixers.packed import serialized_pool

ARGS = dict(num_refs=8, offset_range=0.3, offset_groups=2, rpb_frequencies=4)


def mixer(seed: int = 0, **kw) -> DeformableAttention:
    torch.manual_seed(seed)
    m = DeformableAttention(**{"channels": 16, "num_heads": 4, **ARGS, **kw}).eval()
    if m.num_frequencies:
        with torch.no_grad():  # a visible bias, so the reference checks it
            m.rpb_amp.normal_(0.0, 0.5)
    return m


def reference(m: DeformableAttention, x: torch.Tensor, point, k: int) -> torch.Tensor:
    """Explicit per-cloud deformable attention: stretch means, 3-NN by distance matrix, softmax."""
    h, g, r, c = m.num_heads, m.groups, m.num_refs, x.shape[1]
    d, gc = c // h, c // g
    out = []
    for b in range(point.num_clouds):
        s, e = int(point.offsets[b]), int(point.offsets[b + 1])
        n = e - s
        if n == 0:
            continue
        rows = point.order[k][s:e]
        q = m.q(x[s:e])
        q_curve = m.q(x[rows])
        # reference points: centroid and mean query of each stretch of the curve
        ref, pooled = [], []
        for a in range(r):
            lo, hi = math.floor(a * n / r), math.ceil((a + 1) * n / r)
            ref.append(point.coord[rows[lo:hi]].mean(0))
            pooled.append(q_curve[lo:hi].mean(0))
        ref, pooled = torch.stack(ref), torch.stack(pooled)  # (R, 3), (R, C)
        pos = torch.empty(g, r, 3)
        for gi in range(g):
            t = pooled[:, gi * gc : (gi + 1) * gc].t()[None]  # (1, C/G, R)
            conv = F.conv1d(
                t, m.offset_conv.weight, m.offset_conv.bias, padding=m.offset_conv.padding, groups=gc
            )
            off = m.offset_out(
                F.gelu(F.layer_norm(conv[0].t(), (gc,), m.offset_norm.weight, m.offset_norm.bias))
            )
            pos[gi] = ref + m.offset_range * torch.tanh(off)
        # features at the sample positions: inverse-distance mean of the 3 nearest voxels of the cloud
        sampled = torch.zeros(r, c)
        for gi in range(g):
            dist = torch.cdist(pos[gi], point.coord[s:e])  # (R, n)
            dn, nn_ = torch.topk(dist, min(3, n), dim=1, largest=False)
            w = 1.0 / (dn + 1e-8)
            w = w / w.sum(1, keepdim=True)
            cols = slice(gi * gc, (gi + 1) * gc)
            sampled[:, cols] = (w[..., None] * x[s:e][nn_][..., cols]).sum(1)
        key, val = m.k(sampled), m.v(sampled)
        res = torch.empty(n, c)
        for hi in range(h):
            gi = hi // (h // g)
            cols = slice(hi * d, (hi + 1) * d)
            logits = q[:, cols] @ key[:, cols].t() / math.sqrt(d)  # (n, R)
            if m.num_frequencies:
                disp = point.coord[s:e][:, None, :] - pos[gi][None]  # (n, R, 3)
                phase = disp @ m.rpb_freq.t() + m.rpb_phase  # (n, R, J)
                logits = logits + (m.rpb_amp[hi] * phase.cos()).sum(-1)
            res[:, cols] = torch.softmax(logits, 1) @ val[:, cols]
        out.append(m.proj(res))
    return torch.cat(out)


def test_deformable_attention_matches_an_explicit_per_cloud_reference():
    point = level([60, 1, 0, 23, 2], seed=3)
    m = mixer()
    x = torch.randn(point.num_points, 16)
    with torch.no_grad():
        for k in (0, 2):
            torch.testing.assert_close(m(x, point, k), reference(m, x, point, k), rtol=1e-4, atol=1e-5)
    m1 = mixer(offset_groups=1, rpb_frequencies=0, num_refs=5)
    with torch.no_grad():
        torch.testing.assert_close(m1(x, point, 1), reference(m1, x, point, 1), rtol=1e-4, atol=1e-5)


def test_offsets_are_bounded_and_the_offset_network_gets_gradients():
    point = level([50, 7], seed=4)
    m = mixer()
    x = torch.randn(point.num_points, 16, requires_grad=True)
    m(x, point, 1).square().sum().backward()
    for p in (m.offset_out.weight, m.offset_conv.weight, m.offset_norm.weight, m.rpb_freq):
        assert p.grad is not None and p.grad.abs().sum() > 0
    with torch.no_grad():
        m.offset_out.weight.mul_(1e3)  # saturate the tanh
        pos = m.sample_positions(m.q(x), point, 1)
    ref = serialized_pool(point.coord, point.order[1], point.offsets, m.num_refs)
    off = (pos - ref[:, None]).abs()
    assert off.max() <= m.offset_range * (1 + 1e-5)
    assert off.max() >= 0.99 * m.offset_range  # the bound is reached, not merely respected


def test_interpolation_gradients_reach_the_sample_positions():
    point = level([30, 2], seed=5)
    m = mixer()
    x = torch.randn(point.num_points, 16, dtype=torch.float64)
    with torch.no_grad():
        pos = m.sample_positions(m.q(x.float()), point, 0).double()
    pos.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: m.interpolate(x, p, point)[0], (pos,), eps=1e-6, atol=1e-5)


def test_neighbours_always_come_from_the_samples_own_cloud():
    point = level([40, 40, 1], seed=6)  # clouds 0 and 1 share the same 1.6 m box
    m = mixer(offset_range=1.0)
    with torch.no_grad():
        m.offset_out.weight.mul_(30.0)
        x = torch.randn(point.num_points, 16)
        pos = m.sample_positions(m.q(x), point, 3)
        _, idx, weight = m.interpolate(x, pos, point)
    cloud_of_row = point.batch[idx]  # (B, G, R, 3)
    own = torch.arange(3)[:, None, None, None].expand_as(cloud_of_row)
    assert torch.equal(cloud_of_row[weight > 0], own[weight > 0])
    assert (weight[2] > 0).sum() == m.groups * m.num_refs  # 1-row cloud: one real neighbour per sample
    # the test has teeth: an unpacked search would often pick the other cloud
    nearest = torch.cdist(pos[:2].reshape(-1, 3), point.coord[:80]).argmin(1)
    assert (
        point.batch[nearest] != torch.arange(2).repeat_interleave(m.groups * m.num_refs)
    ).float().mean() > 0.2
    # and cloud 1's features never reach cloud 0's output
    x.requires_grad_(True)
    m(x, point, 3)[:40].sum().backward()
    assert x.grad[40:].abs().max() == 0 and x.grad[:40].abs().min() > 0


def test_neighbour_search_runs_on_the_sample_positions_only(monkeypatch):
    calls = []
    original = deformable.three_nn

    def counting(xyz, offsets, query, query_offsets, **kw):
        calls.append((query.shape[0], query_offsets.tolist()))
        return original(xyz, offsets, query, query_offsets, **kw)

    monkeypatch.setattr(deformable, "three_nn", counting)
    point = level([300, 0, 120], seed=7)
    with torch.no_grad():
        mixer()(torch.randn(420, 16), point, 0)
    per_cloud = ARGS["num_refs"] * ARGS["offset_groups"]
    assert calls == [(2 * per_cloud, [0, per_cloud, per_cloud, 2 * per_cloud])]


def test_deformable_attention_in_a_unet_keeps_clouds_apart_and_trains():
    model = small_unet(DeformableAttention, ARGS)
    check_unet(model)


def test_deformable_attention_runs_under_bfloat16_autocast():
    point = level([70, 5], seed=8)
    m = mixer()
    x = torch.randn(75, 16)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(x, point, 0)
    ref = m(x, point, 0).detach()
    assert torch.isfinite(out).all()
    assert (out.float() - ref).abs().max() < 0.1 * ref.abs().max()


@pytest.mark.parametrize(
    "kw, name",
    [
        (dict(num_heads=3), "num_heads"),
        (dict(num_refs=0), "num_refs"),
        (dict(offset_range=0.0), "offset_range"),
        (dict(offset_range=float("inf")), "offset_range"),
        (dict(offset_groups=3), "offset_groups"),
        (dict(offset_kernel=2), "offset_kernel"),
        (dict(rpb_frequencies=-1), "rpb_frequencies"),
        (dict(attn_drop=1.0), "attn_drop"),
    ],
)
def test_bad_constructor_arguments_are_rejected(kw, name):
    with pytest.raises(ValueError, match=name):
        DeformableAttention(**{"channels": 16, "num_heads": 4, **kw})


@pytest.mark.slow
@pytest.mark.samples
def test_deformable_attention_overfits_a_real_crop(samples_dir):
    assert (
        overfit_scene0000_crop(samples_dir, DeformableAttention, {"num_refs": 32, "offset_range": 0.5}) >= 0.9
    )
