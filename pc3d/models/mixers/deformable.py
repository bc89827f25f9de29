"""Deformable attention as a token mixer of serialized point clouds.

After Z. Xia, X. Pan, S. Song, L. E. Li and G. Huang, "Vision Transformer with Deformable Attention",
CVPR 2022 (DAT), and Z. Xia, X. Pan, S. Song, L. E. Li and G. Huang, "DAT++: Spatially Dynamic Vision
Transformer with Deformable Attention", arXiv:2309.01430, 2023.

DAT lets every query of an image attend to keys and values read at a small set of positions: a
uniform grid of reference points, each moved by an offset that a light network predicts from the
queries around it, with features bilinearly sampled at the moved positions. Offsets are bounded by a
tanh and a range, channels are split into groups that each move their own references, and a
relative-position bias between each query and each sampled position is added to the logits.

On a packed, serialized point cloud (clouds never mixed):

- **Reference points.** Each cloud's sequence along the block's curve is cut into ``num_refs``
  contiguous stretches (:func:`~pc3d.models.mixers.packed.serialized_pool`); a stretch is a compact
  region of space, its reference point is the centroid of its voxels and its query feature the mean
  of its queries. This replaces the image's downsampled reference grid.
- **Offsets.** Per group of heads, a depthwise conv along the sequence of pooled queries (the
  point form of DAT's strided depthwise conv), LayerNorm, GELU and a linear map give a 3D offset,
  bounded to ``offset_range`` metres per axis by a tanh. Groups share the offset network, as in DAT.
- **Sampling.** The feature of group ``g`` at a moved position is the inverse-distance weighted mean
  of the group's channels at the 3 nearest voxels of the same cloud (the 3D counterpart of bilinear
  sampling; the neighbour search, :func:`pc3d.kernels.points.three_nn`, is packed by offsets). The
  weights are computed in torch from coordinates, so the offsets receive gradients through them.
  The search costs ``O(groups x num_refs x n)`` per cloud of ``n`` voxels.
- **Attention.** Keys and values are linear maps of the sampled features; every query attends to
  all ``num_refs`` sampled keys of its own cloud (softmax over them), so the mixer is global over the
  cloud with cost ``O(n x num_refs)``.
- **Relative-position bias.** DAT interpolates a learned table at the displacement between a query
  and a sampled position. In 3D the bias of head ``h`` is a learned Fourier series of the
  displacement, ``sum_j w_hj cos(a_j . (p_query - p_sample) + b_j)`` with learned frequencies
  ``a_j``, phases ``b_j`` and per-head amplitudes ``w_hj``. By ``cos(u - v) = cos u cos v +
  sin u sin v`` it is an inner product of features of the query and of the sampled position, so it
  is computed exactly by appending ``2 J`` features to queries and keys, without any
  ``(n, num_refs)`` bias tensor or per-pair network.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pc3d.kernels.packing import offsets_from_counts
from pc3d.kernels.points import three_nn
from pc3d.models.mixers.packed import cloud_slices, head_dim, serialized_pool
from pc3d.models.point import SerializedPoints

_EPS = 1e-8


class DeformableAttention(nn.Module):
    """Global attention of every point to ``num_refs`` deformed sample positions of its cloud.

    Args:
        channels: feature width ``C``.
        num_heads: attention heads; ``C`` must be divisible by it.
        num_refs: reference points per cloud (tokens of the curve pooling), ``>= 1``.
        offset_range: bound of each offset coordinate, in metres (``offset = offset_range * tanh(.)``).
        offset_groups: groups of channels (and heads) that move their own sample positions;
            ``num_heads`` must be divisible by it (DAT's ``n_groups``).
        offset_kernel: odd kernel of the depthwise conv along the pooled queries of the offset network.
        rpb_frequencies: Fourier terms ``J`` of the relative-position bias (``0``: no bias).
        qkv_bias: biases of the query, key and value maps.
        attn_drop: dropout on the attention weights (training only).
        proj_drop: dropout after the output map.

    ``forward(x (N, C), point, order_index) -> (N, C)``: ``point`` the level's
    :class:`~pc3d.models.point.SerializedPoints` (clouds packed by ``offsets (B+1,)``) and
    ``order_index`` the row of ``point.order`` whose curve defines the reference points.
    """

    def __init__(
        self,
        channels: int,
        num_heads: int = 1,
        num_refs: int = 64,
        offset_range: float = 1.0,
        offset_groups: int = 1,
        offset_kernel: int = 3,
        rpb_frequencies: int = 8,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"channels: expected >= 1, got {channels}")
        head_dim(channels, num_heads)
        if num_refs < 1:
            raise ValueError(f"num_refs: expected >= 1, got {num_refs}")
        if not (math.isfinite(offset_range) and offset_range > 0):
            raise ValueError(f"offset_range: expected a finite distance > 0 in metres, got {offset_range}")
        if offset_groups < 1 or num_heads % offset_groups:
            raise ValueError(
                f"offset_groups: expected a divisor of num_heads {num_heads}, got {offset_groups}"
            )
        if offset_kernel < 1 or offset_kernel % 2 == 0:
            raise ValueError(f"offset_kernel: expected an odd size >= 1, got {offset_kernel}")
        if rpb_frequencies < 0:
            raise ValueError(f"rpb_frequencies: expected >= 0, got {rpb_frequencies}")
        for name, p in (("attn_drop", attn_drop), ("proj_drop", proj_drop)):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{name}: expected a probability in [0, 1), got {p}")
        self.num_heads, self.num_refs, self.groups = num_heads, num_refs, offset_groups
        self.offset_range = float(offset_range)
        self.head_dim = channels // num_heads
        self.attn_drop = attn_drop
        gc = channels // offset_groups
        self.q = nn.Linear(channels, channels, bias=qkv_bias)
        self.k = nn.Linear(channels, channels, bias=qkv_bias)
        self.v = nn.Linear(channels, channels, bias=qkv_bias)
        self.proj = nn.Linear(channels, channels)
        self.proj_drop = nn.Dropout(proj_drop)
        self.offset_conv = nn.Conv1d(gc, gc, offset_kernel, padding=offset_kernel // 2, groups=gc)
        self.offset_norm = nn.LayerNorm(gc)
        self.offset_act = nn.GELU()
        self.offset_out = nn.Linear(gc, 3, bias=False)
        self.num_frequencies = rpb_frequencies
        if rpb_frequencies:  # no empty parameters without a bias: they would never get a gradient (DDP)
            self.rpb_freq = nn.Parameter(torch.empty(rpb_frequencies, 3))
            self.rpb_phase = nn.Parameter(torch.empty(rpb_frequencies))
            self.rpb_amp = nn.Parameter(torch.empty(num_heads, rpb_frequencies))
            self.reset_rpb()

    def reset_rpb(self) -> None:
        """Random directions, wavelengths log-spaced from ``offset_range / 2`` to ``8 offset_range``."""
        j = self.rpb_freq.shape[0]
        with torch.no_grad():
            direction = F.normalize(torch.randn(j, 3), dim=1)
            wavelength = self.offset_range * torch.logspace(math.log10(0.5), math.log10(8.0), max(j, 1))[:j]
            self.rpb_freq.copy_(direction * (2 * math.pi / wavelength)[:, None])
            self.rpb_phase.uniform_(-math.pi, math.pi)
            nn.init.trunc_normal_(self.rpb_amp, std=0.02)

    # ------------------------------------------------------------------ sampling
    def sample_positions(self, q: Tensor, point: SerializedPoints, order_index: int) -> Tensor:
        """Deformed sample positions ``(B, G, R, 3)`` (metres) from queries ``q (N, C)``.

        Reference points are the centroids of ``R = num_refs`` stretches of each cloud's curve;
        the offset of group ``g`` comes from the group's channels of the pooled queries.
        """
        order, offsets = point.order[order_index], point.offsets
        ref = serialized_pool(point.coord.float(), order, offsets, self.num_refs)  # (B, R, 3)
        pooled = serialized_pool(q, order, offsets, self.num_refs)  # (B, R, C)
        b, r, c = pooled.shape
        grouped = pooled.reshape(b, r, self.groups, c // self.groups).permute(0, 2, 3, 1)
        h = self.offset_conv(grouped.reshape(b * self.groups, c // self.groups, r)).transpose(1, 2)
        off = self.offset_out(self.offset_act(self.offset_norm(h))).float()  # (B*G, R, 3)
        off = self.offset_range * torch.tanh(off)
        return ref[:, None] + off.reshape(b, self.groups, r, 3)

    def interpolate(self, x: Tensor, pos: Tensor, point: SerializedPoints) -> tuple[Tensor, Tensor, Tensor]:
        """Features of ``x (N, C)`` at ``pos (B, G, R, 3)``, group ``g`` reading its own channels.

        Returns ``sampled (B, R, C)``, the neighbour rows ``idx (B, G, R, 3)`` (global, always inside
        the sample's cloud) and their inverse-distance weights ``weight (B, G, R, 3)`` (rows of an
        empty cloud: index 0 with weight 0). Gradients reach ``pos`` through the weights.
        """
        b, g, r, _ = pos.shape
        counts = point.offsets[1:] - point.offsets[:-1]
        keep = counts > 0
        pos_offsets = offsets_from_counts(keep.long() * g * r, device=counts.device)
        idx_k, dist_k = three_nn(point.coord, point.offsets, pos[keep].reshape(-1, 3).detach(), pos_offsets)
        idx = idx_k.new_zeros(b, g, r, 3)
        idx[keep] = idx_k.reshape(-1, g, r, 3)
        real = torch.zeros(b, g, r, 3, dtype=torch.bool, device=pos.device)
        real[keep] = torch.isfinite(dist_k).reshape(-1, g, r, 3)  # 1- and 2-point clouds repeat slots
        d = ((pos[..., None, :] - point.coord.float()[idx]).square().sum(-1) + _EPS**2).sqrt()
        w = torch.where(real, 1.0 / (d + _EPS), torch.zeros_like(d))
        weight = w / w.sum(-1, keepdim=True).clamp_min(_EPS)
        group = torch.arange(g, device=x.device)[None, :, None, None]
        feat = x.reshape(x.shape[0], g, -1)[idx, group]  # (B, G, R, 3, C/G)
        sampled = (feat * weight[..., None].to(x.dtype)).sum(3)
        return sampled.permute(0, 2, 1, 3).reshape(b, r, -1), idx, weight

    # ------------------------------------------------------------------ bias features
    def _rpb_features(self, coord: Tensor, pos: Tensor) -> tuple[Tensor, Tensor]:
        """Fourier features of queries ``(N, H, 2J)`` and sampled positions ``(B, R, H, 2J)``.

        Their inner product for head ``h`` is ``sum_j w_hj cos(a_j . (p_query - p_sample) + b_j)``.
        """
        with torch.autocast(coord.device.type, enabled=False):  # phases need float32
            u = coord.float() @ self.rpb_freq.float().t() + self.rpb_phase.float()  # (N, J)
            amp = self.rpb_amp.float()[None]  # (1, H, J)
            fq = torch.cat([amp * u.cos()[:, None], amp * u.sin()[:, None]], -1)
            v = pos.float() @ self.rpb_freq.float().t()  # (B, G, R, J)
            fk = torch.cat([v.cos(), v.sin()], -1).repeat_interleave(self.num_heads // self.groups, 1)
        return fq, fk.transpose(1, 2)

    # ------------------------------------------------------------------ forward
    def forward(self, x: Tensor, point: SerializedPoints, order_index: int) -> Tensor:
        n, c = x.shape
        if n == 0:
            return self.proj(x)
        h, d = self.num_heads, self.head_dim
        q = self.q(x)
        pos = self.sample_positions(q, point, order_index)
        sampled, _, _ = self.interpolate(x, pos, point)
        k = self.k(sampled).reshape(-1, self.num_refs, h, d)  # (B, R, H, D)
        v = self.v(sampled).reshape(-1, self.num_refs, h, d)
        q = q.reshape(n, h, d) * d**-0.5
        if self.num_frequencies:
            fq, fk = self._rpb_features(point.coord, pos)
            q = torch.cat([q, fq.to(q.dtype)], -1)
            k = torch.cat([k, fk.to(k.dtype)], -1)
        out = x.new_empty(n, h, d)
        drop = self.attn_drop if self.training else 0.0
        for cloud, rows in enumerate(cloud_slices(point.offsets)):
            if rows.stop > rows.start:
                out[rows] = F.scaled_dot_product_attention(
                    q[rows].transpose(0, 1), k[cloud].transpose(0, 1), v[cloud].transpose(0, 1),
                    dropout_p=drop, scale=1.0,
                ).transpose(0, 1)  # fmt: skip
        return self.proj_drop(self.proj(out.reshape(n, c)))

    def extra_repr(self) -> str:
        return (
            f"num_heads={self.num_heads}, num_refs={self.num_refs}, offset_range={self.offset_range}, "
            f"offset_groups={self.groups}, rpb_frequencies={self.num_frequencies}"
        )


__all__ = ["DeformableAttention"]
