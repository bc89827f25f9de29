"""MLLA: Mamba-like linear attention, as a serialized point mixer, with a 3D rotary position encoding.

Han, Wang, Xia, Han, Pu, Ge, Song, Song, Zheng and Huang, "Demystify Mamba in Vision: A Linear
Attention Perspective", NeurIPS 2024.

The paper rewrites Mamba's selective state space model as a variant of linear attention and finds that
its advantage comes mostly from two parts of its design: the forget gate of the recurrence and the
block layout around it. MLLA keeps the block layout (an input projection split into a main branch and
a SiLU gate branch, a depthwise conv and SiLU on the main branch, an output projection after
multiplying by the gate, the shortcut) and replaces the causal, forget-gated recurrence by global,
non-causal linear attention with a positive kernel (``ELU + 1``, normalised by division) whose
positional information comes from positional encodings instead: LePE (a depthwise conv of the
values added to the attention output) and RoPE (rotating queries and keys by position-dependent
angles, so their dot products depend on relative positions).

On a serialized point cloud the attention is global over each packed cloud
(:func:`~pc3d.models.mixers.linear.divided_linear_attention`). The 2D depthwise convs (the main
branch's and LePE's) become depthwise convs along the block's serialization curve
(:class:`~pc3d.models.mixers.packed.SerializedDepthwiseConv`). RoPE becomes 3D (:class:`Rope3d`):
the channel pairs of every head are split into thirds rotated by angles proportional to the point's
``x``, ``y`` and ``z`` in metres, at wavelengths spread from decimetres to metres. The block's
shortcut and its input conv are those of :class:`~pc3d.models.blocks.mixer_block.MixerBlock`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pc3d.models.mixers.linear import divided_linear_attention, feature_map, split_heads
from pc3d.models.mixers.packed import SerializedDepthwiseConv, head_dim
from pc3d.models.point import SerializedPoints


class Rope3d(nn.Module):
    """Rotary position encoding of 3D coordinates in metres, the same for every head.

    A head of ``D`` channels has ``P = D // 2`` channel pairs ``(2p, 2p + 1)``; the first
    ``3 M`` of them, ``M = P // 3``, are rotated and the remaining ``P - 3 M`` are left as they are.
    Pair ``a M + m`` (axis ``a`` in x, y, z; ``m < M``) is rotated by the angle
    ``2 pi coord[a] / wavelength[m]``, with wavelengths geometric from ``max_wavelength`` down to
    ``min_wavelength`` (``max_wavelength`` alone when ``M = 1``). A rotated query and key then have
    ``rope(q, p) . rope(k, p') = rope(q, p - p') . k``: their product depends only on ``p - p'``.

    ``forward(x (N, H, D), coord (N, 3)) -> (N, H, D)``.
    """

    def __init__(self, head_dim: int, min_wavelength: float = 0.2, max_wavelength: float = 10.0) -> None:
        super().__init__()
        pairs = head_dim // 2 // 3
        if pairs < 1:
            raise ValueError(f"num_heads: 3D RoPE needs at least 6 channels per head, got {head_dim}")
        if not 0 < min_wavelength <= max_wavelength:
            raise ValueError(
                f"rope wavelengths: expected 0 < min_wavelength <= max_wavelength, "
                f"got {min_wavelength} and {max_wavelength}"
            )
        wavelength = torch.exp(torch.linspace(math.log(max_wavelength), math.log(min_wavelength), pairs))
        self.register_buffer("freq", 2 * math.pi / wavelength, persistent=False)  # (M,) radians per metre

    def forward(self, x: Tensor, coord: Tensor) -> Tensor:
        n, h, _ = x.shape
        r = 3 * self.freq.numel()  # rotated pairs
        angle = (coord.float()[:, :, None] * self.freq).reshape(n, 1, r)  # axis-major, like the pairs
        cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
        a, b = x[..., : 2 * r].reshape(n, h, r, 2).unbind(-1)
        rotated = torch.stack([a * cos - b * sin, a * sin + b * cos], -1).reshape(n, h, 2 * r)
        return torch.cat([rotated, x[..., 2 * r :]], -1)

    def extra_repr(self) -> str:
        return f"pairs_per_axis={self.freq.numel()}"


class MLLA(nn.Module):
    """Mamba-like linear attention mixer, global per cloud.

    ``g = SiLU(Linear(x))`` (gate branch); ``u = SiLU(DWConv_curve(Linear(x)))`` (main branch);
    ``q, k = phi(Linear(u))``, ``v = u``; ``a = LinAttn(rope(q), rope(k), v) + LePE(v)`` with the
    normaliser ``q . mean(k)`` taken before the rotation; ``out = Linear(a * g)``.

    ``kernel`` is the positive feature map ``phi`` (``"elu"``: ``ELU + 1``, or ``"relu"``);
    ``conv_kernel`` and ``lepe_kernel`` are the window lengths along the block's curve of the main
    branch's depthwise conv and of LePE; ``rope`` switches the 3D rotary encoding (:class:`Rope3d`,
    wavelengths from ``rope_min_wavelength`` to ``rope_max_wavelength`` metres); ``eps`` guards the
    division.

    ``forward(x (N, C), point, order_index) -> (N, C)``; clouds are packed by ``point.offsets (B+1,)``
    and ``point.coord (N, 3)`` gives the RoPE positions.
    """

    def __init__(
        self,
        channels: int,
        num_heads: int = 1,
        kernel: str = "elu",
        conv_kernel: int = 3,
        lepe_kernel: int = 3,
        rope: bool = True,
        rope_min_wavelength: float = 0.2,
        rope_max_wavelength: float = 10.0,
        qk_bias: bool = True,
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        d = head_dim(channels, num_heads)
        if kernel not in ("elu", "relu"):
            raise ValueError(f"kernel: expected a positive feature map, 'elu' or 'relu', got {kernel!r}")
        for name, size in (("conv_kernel", conv_kernel), ("lepe_kernel", lepe_kernel)):
            if size < 1:
                raise ValueError(f"{name}: expected >= 1, got {size}")
        if not eps > 0:
            raise ValueError(f"eps: expected > 0, got {eps}")
        self.num_heads = num_heads
        self.kernel = kernel
        self.phi = feature_map(kernel)
        self.eps = eps
        self.gate = nn.Linear(channels, channels)
        self.in_proj = nn.Linear(channels, channels)
        self.conv = SerializedDepthwiseConv(channels, conv_kernel)
        self.qk = nn.Linear(channels, 2 * channels, bias=qk_bias)
        self.rope = Rope3d(d, rope_min_wavelength, rope_max_wavelength) if rope else None
        self.lepe = SerializedDepthwiseConv(channels, lepe_kernel)
        self.out_proj = nn.Linear(channels, channels)

    def forward(self, x: Tensor, point: SerializedPoints, order_index: int) -> Tensor:
        gate = F.silu(self.gate(x))
        u = F.silu(self.conv(self.in_proj(x), point, order_index))
        h = self.num_heads
        q, k = (self.phi(split_heads(t, h)) for t in self.qk(u).chunk(2, dim=-1))
        q_rot, k_rot = (q, k) if self.rope is None else (self.rope(q, point.coord), self.rope(k, point.coord))
        attn = divided_linear_attention(q_rot, k_rot, split_heads(u, h), point.offsets, q, k, self.eps)
        out = attn.reshape_as(x) + self.lepe(u, point, order_index)
        return self.out_proj(out * gate)

    def extra_repr(self) -> str:
        return f"num_heads={self.num_heads}, kernel={self.kernel!r}"


__all__ = ["MLLA", "Rope3d"]
