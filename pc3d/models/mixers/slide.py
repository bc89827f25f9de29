"""Slide attention as a token mixer of the serialized U-Net.

Pan, Ye, Xia, Song and Huang, "Slide-Transformer: Hierarchical Vision Transformer with Local
Self-Attention", CVPR 2023.

Local attention lets each query attend to the ``k x k`` keys around it. Instead of unfolding those
windows with Im2Col, the paper reads the key (and value) matrix as ``k^2`` copies of the feature map,
each shifted by one window offset, and computes the shifts as depthwise convolutions with one-hot
kernels. Its deformed shifting module adds a parallel depthwise convolution with learnable kernels
over the same window, so every window slot holds a learned mix of the window's features rather than
one fixed neighbour; both branches are linear in the features, so at inference they merge into one
convolution whose kernel is the sum of the one-hot and the learned kernels (re-parameterisation).

On serialized point clouds the window of a row is its ``2w + 1`` neighbours along the block's
serialization curve, inside its own cloud: slots that fall past either end of the cloud are masked,
so no value of one cloud reaches another. The ``2w + 1`` shifts are views of the curve-ordered keys
and values laid out with ``w`` zero rows between clouds (``Tensor.unfold``), and the deformed shift is
a ``(2w + 1) x (2w + 1)`` kernel per head channel (shared by the heads) that mixes the window slots;
the one-hot shifts are the identity kernel, so the merged kernel is ``I + D``. The cost is
``N (2w + 1)`` attention scores per head and ``N (2w + 1)^2`` kernel taps per channel.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pc3d.models.mixers.packed import head_dim
from pc3d.models.point import SerializedPoints


def curve_windows(x: Tensor, offsets: Tensor, radius: int) -> tuple[Tensor, Tensor]:
    """The ``2 radius + 1`` shifts of every cloud's curve-ordered rows, zero past the cloud's ends.

    ``x (N, C)`` rows along a curve, clouds packed by ``offsets (B+1,)``. Returns
    ``windows (N, C, 2 radius + 1)`` with ``windows[p, :, j] = x[p + j - radius]`` when that row is in
    ``p``'s cloud and zero otherwise, and ``valid (N, 2 radius + 1)`` marking the in-cloud slots.
    """
    n, c = x.shape
    size = 2 * radius + 1
    counts = (offsets[1:] - offsets[:-1]).to(x.device)
    cloud = torch.repeat_interleave(torch.arange(counts.numel(), device=x.device), counts)
    slot = torch.arange(n, device=x.device) + (cloud + 1) * radius  # radius zero rows before every cloud
    length = n + (counts.numel() + 1) * radius
    padded = x.new_zeros(length, c).index_copy(0, slot, x)
    inside = torch.zeros(length, dtype=torch.bool, device=x.device).index_fill(0, slot, True)
    start = slot - radius  # window of row p: padded rows start[p] .. start[p] + 2 radius
    return padded.unfold(0, size, 1)[start], inside.unfold(0, size, 1)[start]


class SlideAttention(nn.Module):
    """Multi-head local attention over each row's ``window_size`` neighbours along the block's curve.

    With ``w = (window_size - 1) / 2``, per head the query of curve position ``p`` attends to the keys of
    positions ``p - w .. p + w`` of its own cloud (softmax over the in-cloud slots, scale ``s``). With
    ``deformed``, slot ``i`` holds ``sum_j (I + D)[i, j] k_{p - w + j}`` (same for values, with its own
    ``D``): the one-hot shifts plus a learnable depthwise kernel ``D (d, W, W)`` over the window,
    initialised to zero so training starts from plain local attention. :meth:`window_kernels` returns
    the merged kernels ``I + D``, which is what the forward applies.

    Args:
        channels: ``C``, the feature width.
        num_heads: heads ``h``; ``C`` must be divisible by ``h``.
        window_size: ``W = 2 w + 1``, odd and ``>= 1``: the query's own row and ``w`` each side.
        deformed: add the learnable deformed-shift kernels to the fixed shifts.
        qkv_bias: bias of the ``Q, K, V`` projection.
        qk_scale: the softmax scale ``s``; ``None`` for ``(C / h) ** -0.5``.

    ``forward(x (N, C), point, order_index) -> (N, C)``, rows in storage order, clouds packed by
    ``point.offsets (B+1,)``.
    """

    def __init__(
        self,
        channels: int,
        num_heads: int = 1,
        window_size: int = 9,
        deformed: bool = True,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
    ) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"channels: expected >= 1, got {channels}")
        head_dim(channels, num_heads)
        if (
            isinstance(window_size, bool)
            or not isinstance(window_size, int)
            or window_size < 1
            or window_size % 2 == 0
        ):
            raise ValueError(f"window_size: expected an odd int >= 1, got {window_size!r}")
        if qk_scale is not None and not qk_scale > 0:
            raise ValueError(f"qk_scale: expected None or a positive float, got {qk_scale}")
        self.num_heads = num_heads
        self.window_size = window_size
        self.scale = qk_scale or (channels // num_heads) ** -0.5
        self.qkv = nn.Linear(channels, 3 * channels, bias=qkv_bias)
        self.proj = nn.Linear(channels, channels)
        d = channels // num_heads
        self.deform_k = nn.Parameter(torch.zeros(d, window_size, window_size)) if deformed else None
        self.deform_v = nn.Parameter(torch.zeros(d, window_size, window_size)) if deformed else None

    def window_kernels(self) -> tuple[Tensor, Tensor] | None:
        """The re-parameterised key and value kernels ``I + D``, each ``(d, W, W)`` (``None`` if not deformed)."""
        if self.deform_k is None or self.deform_v is None:
            return None
        eye = torch.eye(self.window_size, dtype=self.deform_k.dtype, device=self.deform_k.device)
        return eye + self.deform_k, eye + self.deform_v

    def forward(self, x: Tensor, point: SerializedPoints, order_index: int) -> Tensor:
        n, c = x.shape
        h, size = self.num_heads, self.window_size
        order = point.order[order_index]
        q, k, v = self.qkv(x[order]).reshape(n, 3, c).unbind(1)  # (N, C) each, along the curve
        keys, valid = curve_windows(k, point.offsets, size // 2)  # (N, C, W), (N, W)
        values, _ = curve_windows(v, point.offsets, size // 2)
        keys, values = keys.reshape(n, h, -1, size), values.reshape(n, h, -1, size)
        kernels = self.window_kernels()
        if kernels is not None:  # slot i <- sum_j kernel[:, i, j] * shift j
            keys = torch.einsum("dij,nhdj->nhdi", kernels[0].to(x.dtype), keys)
            values = torch.einsum("dij,nhdj->nhdi", kernels[1].to(x.dtype), values)
        logits = (q.reshape(n, h, -1, 1) * keys).sum(2) * self.scale  # (N, H, W)
        attn = logits.masked_fill(~valid[:, None, :], float("-inf")).softmax(-1)
        out = (attn[:, :, None, :] * values).sum(-1).reshape(n, c)
        return self.proj(out[point.inverse[order_index]])

    def extra_repr(self) -> str:
        return f"num_heads={self.num_heads}, window_size={self.window_size}, deformed={self.deform_k is not None}"


__all__ = ["SlideAttention", "curve_windows"]
