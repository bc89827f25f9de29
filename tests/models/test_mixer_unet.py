"""MixerUNet and the shared per-cloud mixer helpers: packing, pooling and the serialized depthwise conv."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from mixer_checks import check_batch_invariance, check_no_cross_cloud_gradient, level, small_unet
from torch import nn

from pc3d.models.mixers.packed import (
    SerializedDepthwiseConv,
    cloud_apply,
    cloud_kv,
    cloud_sum,
    curve_tokens,
    expand_clouds,
    serialized_pool,
)


class OrderConvMixer(nn.Module):
    """A test mixer: a linear map after a depthwise conv along the block's curve."""

    def __init__(self, channels: int, num_heads: int = 1) -> None:
        super().__init__()
        self.conv = SerializedDepthwiseConv(channels, 5)
        self.proj = nn.Linear(channels, channels)

    def forward(self, x, point, order_index):
        return self.proj(self.conv(x, point, order_index))


def test_mixer_unet_keeps_clouds_apart():
    model = small_unet(OrderConvMixer)
    check_batch_invariance(model)
    check_no_cross_cloud_gradient(model, min_reach=0.5)


def test_mixer_unet_rejects_head_lists_of_the_wrong_length():
    with pytest.raises(ValueError, match="enc_num_heads"):
        small_unet(OrderConvMixer, enc_num_heads=(2, 2))


def test_cloud_reductions_match_a_loop_over_clouds():
    offsets = torch.tensor([0, 5, 5, 12])
    k, v, q = torch.randn(12, 2, 3), torch.randn(12, 2, 4), torch.randn(12, 2, 3)
    state = cloud_kv(k, v, offsets)
    assert state.shape == (3, 2, 3, 4) and state[1].abs().max() == 0
    for b, (s, e) in enumerate([(0, 5), (5, 5), (5, 12)]):
        ref = sum((k[i, :, :, None] * v[i, :, None, :] for i in range(s, e)), torch.zeros(2, 3, 4))
        torch.testing.assert_close(state[b], ref)
        torch.testing.assert_close(cloud_sum(v, offsets)[b], v[s:e].sum(0))
    out = cloud_apply(q, state, offsets)
    torch.testing.assert_close(out[7], torch.einsum("hd,hde->he", q[7], state[2]))
    torch.testing.assert_close(expand_clouds(torch.arange(3.0), offsets), torch.tensor([0.0] * 5 + [2.0] * 7))


def test_serialized_pool_averages_stretches_of_the_curve():
    point = level([10, 3], seed=1)
    x = torch.randn(13, 4)
    pooled = serialized_pool(x, point.order[0], point.offsets, 4)
    assert pooled.shape == (2, 4, 4)
    along = x[point.order[0]]
    torch.testing.assert_close(pooled[0], F.adaptive_avg_pool1d(along[:10].t()[None], 4)[0].t())
    torch.testing.assert_close(pooled[1, 0], along[10])  # fewer rows than tokens: rows repeat
    with pytest.raises(ValueError, match="num_tokens"):
        serialized_pool(x, point.order[0], point.offsets, 0)


def test_serialized_depthwise_conv_is_a_conv_along_each_clouds_curve():
    point = level([9, 6], seed=2)
    conv = SerializedDepthwiseConv(3, 3)
    x = torch.randn(15, 3)
    out = conv(x, point, 1)
    along = x[point.order[1]]
    for s, e in [(0, 9), (9, 15)]:
        ref = F.conv1d(along[s:e].t()[None], conv.weight[:, None], conv.bias, padding=1, groups=3)[0].t()
        torch.testing.assert_close(out[point.order[1][s:e]], ref)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = conv(x.bfloat16(), point, 1)
    assert low.dtype == torch.bfloat16
    torch.testing.assert_close(low.float(), out, rtol=0.02, atol=0.02)


def test_linear_attention_states_do_not_overflow_in_half_precision():
    """A cloud of 70k rows: the fp16 sum would pass 65504; the state is accumulated in float32."""
    k = torch.full((70_000, 1, 2), 2.0, dtype=torch.float16)
    v = torch.full((70_000, 1, 2), 1.0, dtype=torch.float16)
    offsets = torch.tensor([0, 70_000])
    state = cloud_kv(k, v, offsets)
    assert state.dtype == torch.float32
    torch.testing.assert_close(state, torch.full((1, 1, 2, 2), 140_000.0))
    torch.testing.assert_close(cloud_sum(v, offsets), torch.full((1, 1, 2), 70_000.0))


def test_curve_tokens_give_small_clouds_one_token_per_row():
    point = level([10, 3, 0], seed=4)
    x = torch.randn(13, 2)
    tokens, token_offsets = curve_tokens(x, point.order[0], point.offsets, 4)
    assert token_offsets.tolist() == [0, 4, 7, 7]
    torch.testing.assert_close(tokens[:4], serialized_pool(x, point.order[0], point.offsets, 4)[0])
    torch.testing.assert_close(tokens[4:], x[point.order[0][10:]])  # 3 rows, 3 tokens: the rows themselves
