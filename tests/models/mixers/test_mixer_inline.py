"""InLine attention as a MixerUNet mixer: per-cloud injective weights, local residual, packing."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from mixer_checks import (
    check_unet,
    level,
    overfit_scene0000_crop,
    small_unet,
)

from pc3d.models.mixers.inline import InLineAttention


def curve_conv(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """A zero-padded depthwise conv of ``x (n, C)`` (rows already along the curve) with ``weight (C, k)``."""
    size = weight.shape[1]
    return F.conv1d(x.t()[None], weight[:, None], padding=size // 2, groups=x.shape[1])[0].t()


@pytest.mark.parametrize("kernel", ["identity", "relu", "elu"])
def test_inline_matches_explicit_injective_weights_per_cloud(kernel):
    torch.manual_seed(0)
    sizes = [9, 1, 14]
    point = level(sizes, seed=3)
    mixer = InLineAttention(channels=12, num_heads=3, kernel=kernel, residual_kernel=3)
    torch.nn.init.normal_(mixer.local[2].weight)  # a kernel that depends on the cloud
    x = torch.randn(sum(sizes), 12)
    out = mixer(x, point, 2)

    phi = {"identity": lambda t: t, "relu": F.relu, "elu": lambda t: F.elu(t) + 1}[kernel]
    order = point.order[2]
    ref = torch.empty_like(x)
    for s, e in [(0, 9), (9, 10), (10, 24)]:
        rows = order[s:e]  # this cloud's rows along the curve
        n = e - s
        q, k, v = mixer.qkv(x[rows]).chunk(3, -1)
        heads = []
        for h in range(3):
            c = slice(4 * h, 4 * h + 4)
            scores = 0.5 * phi(q[:, c]) @ phi(k[:, c]).t()  # (n, n); scale = 4 ** -0.5
            w = (scores - scores.mean(1, keepdim=True) + 1.0) / n
            torch.testing.assert_close(w.sum(1), torch.ones(n))
            heads.append(w @ v[:, c])
        kernel_of_cloud = mixer.local(x[rows].mean(0)).view(12, 3)  # predicted from the cloud's mean input
        ref[rows] = mixer.proj(torch.cat(heads, 1) + curve_conv(v, kernel_of_cloud))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_inline_weights_tell_apart_scaled_queries():
    """Division-normalised weights of ``q`` and ``2 q`` coincide; InLine's differ (injectivity)."""
    point = level([20], seed=1)
    torch.manual_seed(1)
    mixer = InLineAttention(channels=8, num_heads=1, kernel="relu", residual_kernel=0)
    x = torch.randn(20, 8)
    with torch.no_grad():
        mixer.qkv.weight[:8] *= 2  # doubles the queries (positive scale commutes with ReLU)
        mixer.qkv.bias[:8] *= 2
        doubled = mixer(x, point, 0)
        mixer.qkv.weight[:8] /= 2
        mixer.qkv.bias[:8] /= 2
        plain = mixer(x, point, 0)
    assert (doubled - plain).abs().max() > 1e-3


def test_inline_single_row_cloud_returns_its_value():
    point = level([1], seed=0)
    mixer = InLineAttention(channels=8, num_heads=2, residual_kernel=0)
    x = torch.randn(1, 8)
    v = mixer.qkv(x)[:, 16:]
    torch.testing.assert_close(mixer(x, point, 0), mixer.proj(v))


def test_inline_in_a_unet_keeps_clouds_apart_and_trains():
    model = small_unet(InLineAttention)
    check_unet(model)


@pytest.mark.parametrize(
    "args, name",
    [
        (dict(channels=12, num_heads=5), "num_heads"),
        (dict(channels=12, num_heads=0), "num_heads"),
        (dict(channels=12, kernel="softmax"), "kernel"),
        (dict(channels=12, residual_kernel=-1), "residual_kernel"),
        (dict(channels=12, qk_scale=0.0), "qk_scale"),
        (dict(channels=12, proj_drop=1.0), "proj_drop"),
    ],
)
def test_inline_rejects_bad_arguments(args, name):
    with pytest.raises(ValueError, match=name):
        InLineAttention(**args)


@pytest.mark.slow
@pytest.mark.samples
def test_inline_overfits_a_real_crop(samples_dir):
    assert overfit_scene0000_crop(samples_dir, InLineAttention, {}) >= 0.9
