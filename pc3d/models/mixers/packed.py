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

from pc3d.kernels.packing import batch_index
from pc3d.kernels.scan import sequence_depthwise_conv
from pc3d.models.point import SerializedPoints


def cloud_slices(offsets: Tensor) -> list[slice]:
    """One ``slice`` of rows per cloud for ``offsets (B+1,)``."""
    o = offsets.tolist()
    return [slice(o[b], o[b + 1]) for b in range(len(o) - 1)]


def cloud_sum(x: Tensor, offsets: Tensor) -> Tensor:
    """Per-cloud sum of ``x (N, ...)``: ``(B, ...)`` (zeros for an empty cloud)."""
    return x.new_zeros(offsets.numel() - 1, *x.shape[1:]).index_add_(0, batch_index(offsets.to(x.device)), x)


def expand_clouds(t: Tensor, offsets: Tensor) -> Tensor:
    """Broadcast one value per cloud ``t (B, ...)`` to its rows: ``(N, ...)``."""
    counts = (offsets[1:] - offsets[:-1]).to(t.device)
    return torch.repeat_interleave(t, counts, dim=0)


def cloud_kv(k: Tensor, v: Tensor, offsets: Tensor) -> Tensor:
    """Per-cloud, per-head ``sum_n k_n^T v_n``: ``k (N, H, D)``, ``v (N, H, E)`` -> ``(B, H, D, E)``.

    The linear-attention state of every cloud, formed by one matmul per cloud (never the
    ``(N, H, D, E)`` outer products).
    """
    out = k.new_zeros(offsets.numel() - 1, k.shape[1], k.shape[2], v.shape[2])
    for b, rows in enumerate(cloud_slices(offsets)):
        if rows.stop > rows.start:
            out[b] = torch.einsum("nhd,nhe->hde", k[rows], v[rows])
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
    xs = x[order]
    for b, rows in enumerate(cloud_slices(offsets)):
        if rows.stop > rows.start:
            out[b] = F.adaptive_avg_pool1d(xs[rows].t()[None], num_tokens)[0].t()
    return out


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
    "cloud_apply",
    "cloud_kv",
    "cloud_slices",
    "cloud_sum",
    "expand_clouds",
    "serialized_pool",
]
