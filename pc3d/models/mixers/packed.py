"""Per-cloud operations on packed rows, shared by the token mixers.

Rows of a serialized level are cloud-contiguous: cloud ``b`` owns rows ``offsets[b]:offsets[b+1]``,
and so does every serialization order (the cloud index is the high part of the codes), so the
same ``offsets (B+1,)`` slice the rows in storage order and in any ``point.order[k]``. Every helper
here reduces or broadcasts inside one cloud and never across two.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pc3d.kernels.packing import batch_index, cloud_slices, offsets_from_counts
from pc3d.kernels.scan import sequence_depthwise_conv
from pc3d.models.point import SerializedPoints


def head_dim(channels: int, num_heads: int) -> int:
    """Channels per head, checking that ``num_heads`` divides ``channels``."""
    if num_heads < 1 or channels % num_heads:
        raise ValueError(f"num_heads: expected a divisor of channels {channels}, got {num_heads}")
    return channels // num_heads


def cloud_sum(x: Tensor, offsets: Tensor) -> Tensor:
    """Per-cloud sum of ``x (N, ...)``: ``(B, ...)`` float32 (zeros for an empty cloud).

    Accumulated in float32 whatever ``x``'s dtype: a half-precision sum over a large cloud overflows.
    """
    out = x.new_zeros(offsets.numel() - 1, *x.shape[1:], dtype=torch.float32)
    return out.index_add_(0, batch_index(offsets.to(x.device)), x.float())


def expand_clouds(t: Tensor, offsets: Tensor) -> Tensor:
    """Broadcast one value per cloud ``t (B, ...)`` to its rows: ``(N, ...)``."""
    counts = (offsets[1:] - offsets[:-1]).to(t.device)
    return torch.repeat_interleave(t, counts, dim=0)


def cloud_kv(k: Tensor, v: Tensor, offsets: Tensor) -> Tensor:
    """Per-cloud, per-head ``sum_n k_n^T v_n``: ``k (N, H, D)``, ``v (N, H, E)`` -> ``(B, H, D, E)``.

    The linear-attention state of every cloud, formed by one matmul per cloud (never the
    ``(N, H, D, E)`` outer products), in float32 whatever the inputs' dtype or autocast: a
    half-precision sum over a large cloud overflows.
    """
    out = k.new_zeros(offsets.numel() - 1, k.shape[1], k.shape[2], v.shape[2], dtype=torch.float32)
    with torch.autocast(k.device.type, enabled=False):
        for b, rows in enumerate(cloud_slices(offsets)):
            if rows.stop > rows.start:
                out[b] = torch.einsum("nhd,nhe->hde", k[rows].float(), v[rows].float())
    return out


def cloud_apply(q: Tensor, state: Tensor, offsets: Tensor) -> Tensor:
    """``q_n state[b(n)]`` per head: ``q (N, H, D)``, ``state (B, H, D, E)`` -> ``(N, H, E)``."""
    parts = [
        torch.einsum("nhd,hde->nhe", q[rows], state[b])
        for b, rows in enumerate(cloud_slices(offsets))
        if rows.stop > rows.start
    ]
    return torch.cat(parts) if parts else q.new_zeros(0, q.shape[1], state.shape[3])


def serialized_pool(x: Tensor, order: Tensor, offsets: Tensor, num_tokens: int) -> Tensor:
    """Adaptive average pooling of every cloud's serialized sequence into ``num_tokens`` tokens.

    ``x (N, C)`` in storage order, ``order (N,)`` the rows along the curve, ``offsets (B+1,)``.
    Token ``a`` of a cloud of ``n`` rows averages curve positions ``floor(a n / A) .. ceil((a+1) n / A) - 1``
    (``torch.nn.functional.adaptive_avg_pool1d``), so tokens cover contiguous stretches of the curve,
    i.e. compact regions of space. Returns ``(B, A, C)``; an empty cloud gets zeros.
    """
    if num_tokens < 1:
        raise ValueError(f"num_tokens: expected >= 1, got {num_tokens}")
    out = x.new_zeros(offsets.numel() - 1, num_tokens, x.shape[1])
    xs = x.index_select(0, order)
    for b, rows in enumerate(cloud_slices(offsets)):
        if rows.stop > rows.start:
            out[b] = F.adaptive_avg_pool1d(xs[rows].t()[None], num_tokens)[0].t()
    return out


def curve_tokens(x: Tensor, order: Tensor, offsets: Tensor, num_tokens: int) -> tuple[Tensor, Tensor]:
    """Every cloud's curve average-pooled into ``min(num_tokens, n)`` tokens, packed.

    Like :func:`serialized_pool`, but a cloud of ``n < num_tokens`` rows gets one token per row
    instead of repeated rows, so no row weighs more than another in a softmax over the tokens.
    Returns ``tokens (T, C)`` and ``token_offsets (B+1,)``.
    """
    if num_tokens < 1:
        raise ValueError(f"num_tokens: expected >= 1, got {num_tokens}")
    counts = (offsets[1:] - offsets[:-1]).clamp(max=num_tokens)
    xs = x.index_select(0, order)
    parts = [
        F.adaptive_avg_pool1d(xs[rows].t()[None], m)[0].t()
        for rows, m in zip(cloud_slices(offsets), counts.tolist())
        if m > 0
    ]
    tokens = torch.cat(parts) if parts else x.new_zeros(0, x.shape[1])
    return tokens, offsets_from_counts(counts, device=offsets.device)


def curve_depthwise_conv(x: Tensor, point: SerializedPoints, order_index: int, weight: Tensor) -> Tensor:
    """Centred depthwise conv along ``point.order[order_index]`` with one kernel per cloud.

    ``x (N, C)`` in storage order, ``weight (B, C, k)``: cloud ``b``'s rows are convolved with
    ``weight[b]`` (zero-padded at the cloud's ends). Returns ``(N, C)`` in storage order, in ``x``'s
    dtype (computed in float32); differentiable in ``x`` and ``weight``.
    """
    xs = x[point.order[order_index]].float()
    out = torch.zeros_like(xs)
    for b, rows in enumerate(cloud_slices(point.offsets)):
        if rows.stop > rows.start:
            out[rows] = sequence_depthwise_conv(xs[rows].t()[None].contiguous(), weight[b].float())[0].t()
    return out[point.inverse[order_index]].to(x.dtype)


class SerializedDepthwiseConv(nn.Module):
    """Centred depthwise conv along a serialization curve, per cloud (zero-padded at its ends).

    The point-cloud form of the depthwise convolutions that efficient-attention papers add on the
    value or output path: each row mixes with its ``kernel_size - 1`` neighbours along
    ``point.order[order_index]``, never with another cloud's rows.
    ``forward(x (N, C), point, order_index) -> (N, C)`` in storage order.
    """

    def __init__(self, channels: int, kernel_size: int = 3, bias: bool = True) -> None:
        super().__init__()
        if kernel_size < 1:
            raise ValueError(f"kernel_size: expected >= 1, got {kernel_size}")
        self.weight = nn.Parameter(torch.empty(channels, kernel_size))
        self.bias = nn.Parameter(torch.zeros(channels)) if bias else None
        nn.init.kaiming_uniform_(self.weight.view(channels, 1, kernel_size), a=5**0.5)

    def forward(self, x: Tensor, point: SerializedPoints, order_index: int) -> Tensor:
        # float32 whatever the autocast dtype: the CPU kernel has no bfloat16 path
        xs = x[point.order[order_index]].float().t()[None]  # (1, C, N) along the curve
        y = sequence_depthwise_conv(xs.contiguous(), self.weight.float(), point.offsets)[0].t()
        if self.bias is not None:
            y = y + self.bias.float()
        return y[point.inverse[order_index]].to(x.dtype)

    def extra_repr(self) -> str:
        return f"channels={self.weight.shape[0]}, kernel_size={self.weight.shape[1]}"


__all__ = [
    "SerializedDepthwiseConv",
    "head_dim",
    "cloud_apply",
    "cloud_kv",
    "cloud_slices",
    "cloud_sum",
    "curve_depthwise_conv",
    "curve_tokens",
    "expand_clouds",
    "serialized_pool",
]
