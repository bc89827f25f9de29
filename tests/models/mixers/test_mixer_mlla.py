"""MLLA as a MixerUNet mixer: gated linear attention with LePE and 3D RoPE, per cloud."""

from __future__ import annotations

import dataclasses
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

from pc3d.models.mixers.mlla import MLLA, Rope3d


def curve_conv(x: torch.Tensor, conv) -> torch.Tensor:
    """A zero-padded depthwise conv of ``x (n, C)`` (rows already along the curve), by ``F.conv1d``."""
    size = conv.weight.shape[1]
    return F.conv1d(x.t()[None], conv.weight[:, None], conv.bias, padding=size // 2, groups=x.shape[1])[0].t()


def rope_reference(x: torch.Tensor, coord: torch.Tensor, lo: float = 0.2, hi: float = 10.0) -> torch.Tensor:
    """3D RoPE of ``x (n, D)`` as complex products: pair ``a M + m`` turns by ``2 pi coord[a] / lambda_m``."""
    pairs = x.shape[1] // 2
    m = pairs // 3
    wavelength = [hi * (lo / hi) ** (i / (m - 1)) if m > 1 else hi for i in range(m)]
    angle = torch.zeros(x.shape[0], pairs)
    for p in range(3 * m):
        angle[:, p] = 2 * math.pi * coord[:, p // m] / wavelength[p % m]
    z = torch.complex(x[:, 0::2], x[:, 1::2]) * torch.polar(torch.ones_like(angle), angle)
    return torch.stack([z.real, z.imag], -1).reshape(x.shape)


@pytest.mark.parametrize("channels, heads", [(18, 3), (16, 1)])
def test_mlla_matches_explicit_attention_matrix_per_cloud(channels, heads):
    torch.manual_seed(0)
    sizes = [9, 1, 14]
    point = level(sizes, seed=4)
    mixer = MLLA(channels=channels, num_heads=heads, conv_kernel=3, lepe_kernel=5)
    x = torch.randn(sum(sizes), channels)
    out = mixer(x, point, 1)

    d = channels // heads
    order = point.order[1]
    ref = torch.empty_like(x)
    for s, e in [(0, 9), (9, 10), (10, 24)]:
        rows = order[s:e]  # this cloud's rows along the curve
        gate = F.silu(mixer.gate(x[rows]))
        u = F.silu(curve_conv(mixer.in_proj(x[rows]), mixer.conv))
        q, k = (F.elu(t) + 1 for t in mixer.qk(u).chunk(2, -1))
        heads_out = []
        for h in range(heads):
            c = slice(d * h, d * h + d)
            coord = point.coord[rows]
            scores = rope_reference(q[:, c], coord) @ rope_reference(k[:, c], coord).t()  # (n, n)
            attn = scores / (q[:, c] @ k[:, c].sum(0))[:, None]
            heads_out.append(attn @ u[:, c])
        ref[rows] = mixer.out_proj((torch.cat(heads_out, 1) + curve_conv(u, mixer.lepe)) * gate)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_rope3d_products_depend_only_on_relative_position():
    g = torch.Generator().manual_seed(0)
    rope = Rope3d(16)
    q, k = torch.randn(6, 2, 16, generator=g), torch.randn(6, 2, 16, generator=g)
    p = torch.rand(6, 3, generator=g) * 4
    shift = torch.tensor([3.7, -2.1, 5.3])

    def products(pq, pk):  # (i, j, head) products of rotated q_i and k_j
        return torch.einsum("ihd,jhd->ijh", rope(q, pq), rope(k, pk))

    base = products(p, p)
    torch.testing.assert_close(products(p + shift, p + shift), base, rtol=1e-4, atol=1e-4)
    q_at_offset = rope(q.repeat_interleave(6, 0), (p[:, None] - p[None]).reshape(36, 3))  # q_i at p_i - p_j
    relative = torch.einsum("ijhd,jhd->ijh", q_at_offset.reshape(6, 6, 2, 16), k)
    torch.testing.assert_close(relative, base, rtol=1e-4, atol=1e-4)
    assert (base - torch.einsum("ihd,jhd->ijh", q, k)).abs().max() > 0.1  # the rotation does act
    torch.testing.assert_close(rope(q, p).norm(dim=-1), q.norm(dim=-1))


def test_mlla_sees_coordinates_only_relatively():
    torch.manual_seed(2)
    point = level([30, 12], seed=5)
    x = torch.randn(42, 24)
    moved = dataclasses.replace(point, coord=point.coord + torch.tensor([2.3, -4.1, 1.7]))
    scaled = dataclasses.replace(point, coord=point.coord * 1.5)
    mixer = MLLA(channels=24, num_heads=2)
    with torch.no_grad():
        out = mixer(x, point, 0)
        torch.testing.assert_close(mixer(x, moved, 0), out, rtol=1e-4, atol=1e-5)
        assert (mixer(x, scaled, 0) - out).abs().max() > 1e-3  # relative geometry matters
        mixer.rope = None
        torch.testing.assert_close(mixer(x, scaled, 0), mixer(x, point, 0))


def test_mlla_in_a_unet_keeps_clouds_apart_and_trains():
    model = small_unet(MLLA)
    check_unet(model)


@pytest.mark.parametrize(
    "args, name",
    [
        (dict(channels=12, num_heads=5), "num_heads"),
        (dict(channels=8, num_heads=2), "num_heads"),  # 4 channels per head: too few for 3D RoPE
        (dict(channels=12, kernel="identity"), "kernel"),
        (dict(channels=12, conv_kernel=0), "conv_kernel"),
        (dict(channels=12, lepe_kernel=0), "lepe_kernel"),
        (dict(channels=12, rope_min_wavelength=5.0, rope_max_wavelength=1.0), "wavelength"),
        (dict(channels=12, rope_min_wavelength=0.0), "wavelength"),
        (dict(channels=12, eps=0.0), "eps"),
    ],
)
def test_mlla_rejects_bad_arguments(args, name):
    with pytest.raises(ValueError, match=name):
        MLLA(**args)


def test_mlla_without_rope_allows_narrow_heads():
    point = level([5], seed=0)
    assert MLLA(channels=8, num_heads=2, rope=False)(torch.randn(5, 8), point, 0).shape == (5, 8)


@pytest.mark.slow
@pytest.mark.samples
def test_mlla_overfits_a_real_crop(samples_dir):
    assert overfit_scene0000_crop(samples_dir, MLLA, {}) >= 0.9
