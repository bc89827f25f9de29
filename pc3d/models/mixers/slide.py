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
so no value of one cloud reaches another. The ``2w + 1`` shifts are gathers of the curve-ordered keys
and values laid out with ``w`` zero rows between clouds (:class:`CurveShifts`), taken one at a time,
and the deformed shift is a ``(2w + 1) x (2w + 1)`` kernel per head channel (shared by the heads) that
mixes the window slots; the one-hot shifts are the identity kernel, so the merged kernel is ``I + D``.
The cost is ``N (2w + 1)`` attention scores per head and ``N (2w + 1)^2`` kernel taps per channel;
the memory ``O(N (C + heads (2w + 1)))``, and in training the window attention is recomputed in the
backward pass instead of stored.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from pc3d.kernels.packing import batch_index
from pc3d.models.mixers.packed import head_dim
from pc3d.models.point import SerializedPoints


class CurveShifts:
    """Shifts of every cloud's curve-ordered rows by ``-radius .. radius``, zero past the cloud's ends.

    Built for ``offsets (B+1,)``: the rows are laid out with ``radius`` zero rows before, between and
    after the clouds, so shift ``j`` of a row is one gather, ``x[p + j - radius]`` inside its cloud
    and zero outside, and no shift reaches another cloud. ``shift(x (N, C), j) -> (N, C)``,
    ``valid(j) -> (N,)`` marks the rows whose shift ``j`` lies in their cloud.
    """

    def __init__(self, offsets: Tensor, radius: int) -> None:
        n = int(offsets[-1])
        self.radius = radius
        self.slot = torch.arange(n, device=offsets.device) + (batch_index(offsets) + 1) * radius
        self.length = n + offsets.numel() * radius
        self.inside = torch.zeros(self.length, dtype=torch.bool, device=offsets.device)
        self.inside[self.slot] = True

    def pad(self, x: Tensor) -> Tensor:
        """``x (N, C)`` in the padded layout ``(length, C)``."""
        return x.new_zeros(self.length, x.shape[1]).index_copy(0, self.slot, x)

    def shift(self, padded: Tensor, j: int) -> Tensor:
        """Rows ``p + j - radius`` of a :meth:`pad` ded tensor: ``(N, C)``."""
        return padded[self.slot + (j - self.radius)]

    def valid(self, j: int) -> Tensor:
        return self.inside[self.slot + (j - self.radius)]


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
        order = point.order[order_index]
        q, k, v = (
            self.qkv(x.index_select(0, order)).reshape(n, 3, c).unbind(1)
        )  # (N, C) each, along the curve
        shifts = CurveShifts(point.offsets.to(x.device), self.window_size // 2)
        if self.training and torch.is_grad_enabled():  # recompute in backward: keep no per-shift tensors
            out = checkpoint(self._attend, q, k, v, shifts, use_reentrant=False)
        else:
            out = self._attend(q, k, v, shifts)
        return self.proj(out[point.inverse[order_index]])

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, shifts: CurveShifts) -> Tensor:
        """Window attention along the curve, one shift at a time: ``(N, C)`` from ``q, k, v (N, C)``.

        Slot ``i``'s key is ``sum_j M[:, i, j] shift_j(k)`` (``M = I + D``, or ``I``), so its logit is
        ``sum_j (q * shift_j(k)) @ M[:, :, j]``; the output is ``sum_j shift_j(v) * (attn @ M_v[:, :, j]^T)``.
        Memory is ``O(N (C + H W))``, never ``N x C x W``.
        """
        n, c = q.shape
        h, size = self.num_heads, self.window_size
        kernels = self.window_kernels()
        qh = q.reshape(n, h, -1) * self.scale
        padded_k, padded_v = shifts.pad(k), shifts.pad(v)
        logits = q.new_zeros(n, h, size)
        for j in range(size):
            prod = qh * shifts.shift(padded_k, j).reshape(n, h, -1)  # (N, H, d)
            if kernels is None:
                logits[:, :, j] = prod.sum(-1)
            else:
                logits.add_(prod @ kernels[0][:, :, j].to(prod.dtype))
        valid = torch.stack([shifts.valid(j) for j in range(size)], 1)  # (N, W)
        attn = logits.masked_fill(~valid[:, None, :], float("-inf")).softmax(-1)
        out = q.new_zeros(n, h, c // h)
        for j in range(size):
            coef = attn[:, :, j : j + 1] if kernels is None else attn @ kernels[1][:, :, j].t().to(attn.dtype)
            out.addcmul_(coef, shifts.shift(padded_v, j).reshape(n, h, -1))
        return out.reshape(n, c)

    def extra_repr(self) -> str:
        return f"num_heads={self.num_heads}, window_size={self.window_size}, deformed={self.deform_k is not None}"


__all__ = ["CurveShifts", "SlideAttention"]
