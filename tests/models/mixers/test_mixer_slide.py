"""SlideAttention: local attention over shifted copies of the curve-ordered keys and values."""

from __future__ import annotations

import pytest
import torch
from mixer_checks import (
    check_unet,
    level,
    overfit_scene0000_crop,
    small_unet,
)

from pc3d.models.mixers.slide import CurveShifts, SlideAttention


def _mixer(window_size: int, deformed: bool = True, channels: int = 8, num_heads: int = 2) -> SlideAttention:
    torch.manual_seed(0)
    mixer = SlideAttention(channels, num_heads, window_size=window_size, deformed=deformed).eval()
    if deformed:
        with torch.no_grad():
            mixer.deform_k.normal_(0.0, 0.3)
            mixer.deform_v.normal_(0.0, 0.3)
    return mixer


def _qkv_along(mixer: SlideAttention, x: torch.Tensor, rows: torch.Tensor) -> list[torch.Tensor]:
    """Per-head ``Q, K, V (H, n, d)`` of ``rows`` (one cloud along the curve)."""
    return list(mixer.qkv(x[rows]).reshape(rows.numel(), 3, mixer.num_heads, -1).permute(1, 2, 0, 3))


def _banded_reference(mixer: SlideAttention, x: torch.Tensor, point, order_index: int) -> torch.Tensor:
    """Plain local attention: per cloud and head, the full matrix with ``|p - r| > w`` masked."""
    w = mixer.window_size // 2
    out = torch.zeros_like(x)
    o = point.offsets.tolist()
    for b in range(len(o) - 1):
        rows = point.order[order_index][o[b] : o[b + 1]]
        n = rows.numel()
        q, k, v = _qkv_along(mixer, x, rows)
        pos = torch.arange(n)
        band = (pos[:, None] - pos[None, :]).abs() <= w
        heads = []
        for h in range(mixer.num_heads):
            logits = (mixer.scale * q[h] @ k[h].T).masked_fill(~band, float("-inf"))
            heads.append(torch.softmax(logits, 1) @ v[h])
        out[rows] = torch.cat(heads, 1)
    return mixer.proj(out)


def _deformed_reference(mixer: SlideAttention, x: torch.Tensor, point, order_index: int) -> torch.Tensor:
    """Two branches as in training: slot ``i`` holds the shifted row ``p + i - w`` plus the learned
    depthwise conv ``sum_j D[:, i, j] row(p + j - w)`` over the window (rows past the cloud are zero);
    slots past the cloud's ends are masked. One row at a time."""
    w = mixer.window_size // 2
    out = torch.zeros_like(x)
    o = point.offsets.tolist()
    for b in range(len(o) - 1):
        rows = point.order[order_index][o[b] : o[b + 1]]
        n = rows.numel()
        q, k, v = _qkv_along(mixer, x, rows)
        zeros = torch.zeros(mixer.num_heads, w, q.shape[2])
        k, v = torch.cat([zeros, k, zeros], 1), torch.cat([zeros, v, zeros], 1)  # row p + j - w at p + j
        for p in range(n):
            slots = [i for i in range(2 * w + 1) if 0 <= p + i - w < n]
            keys = torch.stack(
                [
                    k[:, p + i] + sum(mixer.deform_k[:, i, j] * k[:, p + j] for j in range(2 * w + 1))
                    for i in slots
                ]
            )  # (S, H, d)
            values = torch.stack(
                [
                    v[:, p + i] + sum(mixer.deform_v[:, i, j] * v[:, p + j] for j in range(2 * w + 1))
                    for i in slots
                ]
            )
            attn = torch.softmax(mixer.scale * (keys * q[:, p]).sum(-1), 0)  # (S, H) over the slots
            out[rows[p]] = (attn[..., None] * values).sum(0).reshape(-1)
    return mixer.proj(out)


def test_curve_shifts_stay_inside_each_cloud():
    x = torch.arange(1.0, 7.0)[:, None] * torch.tensor([1.0, 10.0])  # rows 1..6, two channels
    shifts = CurveShifts(torch.tensor([0, 3, 3, 4, 6]), 1)  # clouds of 3, 0, 1 and 2 rows
    padded = shifts.pad(x)
    windows = torch.stack([shifts.shift(padded, j) for j in range(3)], -1)
    valid = torch.stack([shifts.valid(j) for j in range(3)], -1)
    assert windows.shape == (6, 2, 3) and valid.shape == (6, 3)
    expected = torch.tensor(
        [[0, 1, 2], [1, 2, 3], [2, 3, 0], [0, 4, 0], [0, 5, 6], [5, 6, 0]], dtype=torch.float
    )
    torch.testing.assert_close(windows[:, 0], expected)
    torch.testing.assert_close(windows[:, 1], 10 * expected)
    assert torch.equal(valid, expected > 0)


def test_slide_attention_matches_banded_attention_per_cloud():
    point = level([40, 11, 1, 3], seed=3)
    x = torch.randn(point.num_points, 8, generator=torch.Generator().manual_seed(1))
    mixer = _mixer(5, deformed=False)
    with torch.no_grad():
        for order_index in (0, 3):
            ref = _banded_reference(mixer, x, point, order_index)
            torch.testing.assert_close(mixer(x, point, order_index), ref, rtol=1e-5, atol=1e-5)


def test_deformed_shifts_match_the_two_branch_form_per_cloud():
    point = level([23, 6, 1], seed=6)
    x = torch.randn(point.num_points, 8, generator=torch.Generator().manual_seed(2))
    mixer = _mixer(5)
    with torch.no_grad():
        out = mixer(x, point, 1)
        torch.testing.assert_close(out, _deformed_reference(mixer, x, point, 1), rtol=1e-5, atol=1e-5)
        assert (out - _banded_reference(mixer, x, point, 1)).abs().max() > 1e-3, (
            "the deformation has no effect"
        )
        eye = torch.eye(5)
        kernels = mixer.window_kernels()
        torch.testing.assert_close(kernels[0], eye + mixer.deform_k)
        torch.testing.assert_close(kernels[1], eye + mixer.deform_v)


def test_zero_deformation_is_plain_local_attention_and_a_wide_window_is_full_attention():
    point = level([12, 4, 1], seed=7)
    x = torch.randn(17, 8, generator=torch.Generator().manual_seed(3))
    plain, fresh = _mixer(23, deformed=False), SlideAttention(8, 2, window_size=23)
    fresh.load_state_dict(plain.state_dict(), strict=False)  # deformation stays at its zero init
    with torch.no_grad():
        out = plain(x, point, 2)
        torch.testing.assert_close(fresh(x, point, 2), out)
        for a, e in [(0, 12), (12, 16), (16, 17)]:  # 2 w + 1 >= 2 n - 1: every row sees its whole cloud
            rows = torch.arange(a, e)
            q, k, v = _qkv_along(plain, x, rows)
            full = (plain.scale * q @ k.transpose(1, 2)).softmax(-1) @ v
            ref = plain.proj(full.transpose(0, 1).reshape(e - a, 8))
            torch.testing.assert_close(out[a:e], ref, rtol=1e-5, atol=1e-5)


def _deformed_unet():
    model = small_unet(SlideAttention, {"window_size": 5})
    torch.manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, SlideAttention):
                m.deform_k.normal_(0.0, 0.2)
                m.deform_v.normal_(0.0, 0.2)
    return model


def test_slide_unet_keeps_clouds_apart_and_trains():
    model = _deformed_unet()
    check_unet(model)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(channels=8, num_heads=3), "num_heads"),
        (dict(channels=0), "channels"),
        (dict(channels=8, window_size=4), "window_size"),
        (dict(channels=8, window_size=0), "window_size"),
        (dict(channels=8, window_size=3.0), "window_size"),
        (dict(channels=8, window_size=True), "window_size"),
        (dict(channels=8, qk_scale=0.0), "qk_scale"),
    ],
)
def test_slide_attention_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        SlideAttention(**kwargs)


@pytest.mark.slow
@pytest.mark.samples
def test_slide_overfits_a_real_crop(samples_dir):
    assert overfit_scene0000_crop(samples_dir, SlideAttention, {"window_size": 9}) >= 0.9
