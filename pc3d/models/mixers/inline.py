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
depthwise conv of the values along ``point.order[order_index]`` whose per-channel kernel is predicted,
as in the paper, from the mean of the sample's input tokens; a sample here is a cloud, so every cloud
gets its own kernel (:func:`~pc3d.models.mixers.packed.curve_depthwise_conv`).
"""

from __future__ import annotations

from torch import Tensor, nn

from pc3d.models.mixers.linear import cloud_mean, feature_map, injective_linear_attention, split_heads
from pc3d.models.mixers.packed import curve_depthwise_conv, head_dim
from pc3d.models.point import SerializedPoints


class InLineAttention(nn.Module):
    """Multi-head injective linear attention, global per cloud, plus a local residual along the curve.

    ``q, k, v = Linear(x)``; ``out = Proj(InLine(s phi(q), phi(k), v) + DWConv_curve(v; W))``, where
    ``InLine`` weighs the values of the cloud by ``(s phi(q_i) . phi(k_j) - mean_j' (...) + 1) / n``, with
    ``s = qk_scale`` (default ``head_dim ** -0.5``) and ``phi`` the ``kernel`` feature map
    (``"identity"``, ``"relu"`` or ``"elu"``, see :data:`~pc3d.models.mixers.linear.FEATURE_MAPS`).
    ``residual_kernel`` is the length of the local residual's window along the curve (0 leaves the
    residual out); its kernel ``W (C, residual_kernel)`` is ``MLP(mean of the cloud's x)``
    (``Linear(C, C/4) -> GELU -> Linear(C/4, C k)``, starting from a learned static kernel: the last
    layer's weights start at zero).

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
        self.residual_kernel = residual_kernel
        self.local = None
        if residual_kernel:
            hidden = max(channels // 4, 1)
            self.local = nn.Sequential(
                nn.Linear(channels, hidden), nn.GELU(), nn.Linear(hidden, channels * residual_kernel)
            )
            nn.init.zeros_(self.local[2].weight)
            nn.init.uniform_(self.local[2].bias, -(residual_kernel**-0.5), residual_kernel**-0.5)
        self.proj = nn.Linear(channels, channels)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor, point: SerializedPoints, order_index: int) -> Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        h = self.num_heads
        q, k = self.phi(split_heads(q, h)) * self.scale, self.phi(split_heads(k, h))
        out = injective_linear_attention(q, k, split_heads(v, h), point.offsets).reshape_as(x)
        if self.local is not None:
            weight = self.local(cloud_mean(x, point.offsets)).view(-1, x.shape[1], self.residual_kernel)
            out = out + curve_depthwise_conv(v, point, order_index, weight)
        return self.proj_drop(self.proj(out))

    def extra_repr(self) -> str:
        return f"num_heads={self.num_heads}, kernel={self.kernel!r}, scale={self.scale:.4g}"


__all__ = ["InLineAttention"]
