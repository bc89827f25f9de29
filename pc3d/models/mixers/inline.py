"""InLine attention: injective linear attention with a local residual, as a serialized point mixer.

Han, Pu, Xia, Han, Pan, Li, Lu, Song and Huang, "Bridging the Divide: Reconsidering Softmax and
Linear Attention", NeurIPS 2024.

The paper traces the gap between softmax and linear attention to two properties. Linear attention
normalised by division is not injective: queries whose scores differ by a factor get identical
weights. InLine normalises by subtraction instead, from scores ``s_ij = phi(q_i) . phi(k_j)``:
``w_ij = s_ij - mean_j' s_ij' + 1/n``, so each row of weights still sums to 1 while queries with
different scores (up to a constant) keep different weights. Softmax attention also concentrates on
nearby tokens, which linear attention does not; the paper restores that with a local residual, a
learned aggregation of each token's neighbourhood of values added to the attention output.

On a serialized point cloud the attention is global over each packed cloud (its ``n`` rows replace the
image's tokens), computed in linear time from the cloud's centred key-value state
(:func:`~pc3d.models.mixers.linear.injective_linear_attention`). Clouds of one batch, and the levels
of the U-Net, differ widely in ``n``, which on images is fixed per stage; the scores are therefore
divided by the cloud's size, ``s_ij / n`` (the weights ``(s_ij - mean_j' s_ij' + 1) / n`` are softmax's
first-order expansion), so the output does not grow with the size of the cloud. The image
neighbourhood of the local residual becomes a window along the block's serialization curve: a
depthwise conv of the values along ``point.order[order_index]``
(:class:`~pc3d.models.mixers.packed.SerializedDepthwiseConv`), with static learned weights per channel.
"""

from __future__ import annotations

from torch import Tensor, nn

from pc3d.models.mixers.linear import feature_map, head_dim, injective_linear_attention, split_heads
from pc3d.models.mixers.packed import SerializedDepthwiseConv
from pc3d.models.point import SerializedPoints


class InLineAttention(nn.Module):
    """Multi-head injective linear attention, global per cloud, plus a local residual along the curve.

    ``q, k, v = Linear(x)``; ``out = Proj(InLine(phi(s q), phi(k), v) + DWConv_curve(v))``, where
    ``InLine`` weighs the values of the cloud by ``(phi(s q_i) . phi(k_j) - mean_j' (...) + 1) / n``, with
    ``s = qk_scale`` (default ``head_dim ** -0.5``) and ``phi`` the ``kernel`` feature map
    (``"identity"``, ``"relu"`` or ``"elu"``, see :data:`~pc3d.models.mixers.linear.FEATURE_MAPS`).
    ``residual_kernel`` is the length of the local residual's window along the curve (0 leaves the
    residual out).

    ``forward(x (N, C), point, order_index) -> (N, C)``; clouds are packed by ``point.offsets (B+1,)``.
    """

    def __init__(
        self,
        channels: int,
        num_heads: int = 1,
        kernel: str = "identity",
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        residual_kernel: int = 5,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        d = head_dim(channels, num_heads)
        if qk_scale is not None and not qk_scale > 0:
            raise ValueError(f"qk_scale: expected a positive number or None, got {qk_scale}")
        if residual_kernel < 0:
            raise ValueError(f"residual_kernel: expected >= 0 (0: no local residual), got {residual_kernel}")
        if not 0.0 <= proj_drop < 1.0:
            raise ValueError(f"proj_drop: expected a probability in [0, 1), got {proj_drop}")
        self.num_heads = num_heads
        self.kernel = kernel
        self.phi = feature_map(kernel)
        self.scale = qk_scale or d**-0.5
        self.qkv = nn.Linear(channels, 3 * channels, bias=qkv_bias)
        self.local = SerializedDepthwiseConv(channels, residual_kernel) if residual_kernel else None
        self.proj = nn.Linear(channels, channels)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor, point: SerializedPoints, order_index: int) -> Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        h = self.num_heads
        q, k = self.phi(split_heads(q * self.scale, h)), self.phi(split_heads(k, h))
        out = injective_linear_attention(q, k, split_heads(v, h), point.offsets).reshape_as(x)
        if self.local is not None:
            out = out + self.local(v, point, order_index)
        return self.proj_drop(self.proj(out))

    def extra_repr(self) -> str:
        return f"num_heads={self.num_heads}, kernel={self.kernel!r}, scale={self.scale:.4g}"


__all__ = ["InLineAttention"]
