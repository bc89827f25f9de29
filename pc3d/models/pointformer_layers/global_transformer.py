"""Global Transformer and Local-Global Transformer (per-cloud attention over packed points)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from pc3d.kernels.packing import cloud_slices

from .attention import PositionEncoding, TransformerDecoderLayer, TransformerEncoderLayer


class GlobalTransformer(nn.Module):
    """Self-attention over all sampled points of each cloud with absolute-xyz position encoding.

    ``xyz (S, 3)``, ``feat (S, dim)``, ``offsets (B+1,)`` -> ``(S, out_channels)``. Each cloud
    attends only to itself. ``kv_ratio > 1`` enables the Linformer projection, which needs
    ``seq_len`` (the maximum number of points per cloud, e.g. the block's ``num_points``).

    ``attention`` replaces full attention in every layer by another class (or dotted class path),
    built as ``attention(dim=, num_heads=, dropout=, **attention_args)`` and given the points' xyz
    (see :class:`~.attention.TransformerEncoderLayer`), e.g. :class:`~.attention.AgentGlobalAttention`
    with ``attention_args={"num_agents": 64}``, whose memory grows linearly with the points per cloud.
    """

    def __init__(
        self,
        dim: int,
        out_channels: int,
        num_heads: int = 8,
        num_layers: int = 2,
        ffn_ratio: float = 2.0,
        dropout: float = 0.0,
        prenorm: bool = True,
        seq_len: int | None = None,
        kv_ratio: int = 1,
        attention: Callable[..., nn.Module] | str | None = None,
        attention_args: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.pe = PositionEncoding(dim)
        self.layers = nn.ModuleList(
            TransformerEncoderLayer(
                dim, num_heads, ffn_ratio, dropout, prenorm, seq_len, kv_ratio, attention, attention_args
            )
            for _ in range(num_layers)
        )
        self.out = nn.Linear(dim, out_channels)

    def forward(self, xyz: Tensor, feat: Tensor, offsets: Tensor) -> Tensor:
        x = feat + self.pe(xyz)
        outs = []
        for rows in cloud_slices(offsets):
            h = x[rows].unsqueeze(0)
            pos = xyz[rows].unsqueeze(0)
            for layer in self.layers:
                h, _ = layer(h, xyz=pos)
            outs.append(h[0])
        return self.out(torch.cat(outs) if outs else x)


class LocalGlobalTransformer(nn.Module):
    """Cross-attention from the sampled points (queries) to the block's higher-resolution input.

    ``tgt = LT features + PE(centroid xyz)``; ``memory = input features (projected to dim) +
    PE(input xyz)`` (the same PE module serves both); one decoder layer per cloud. Returns
    ``(S, dim)`` that the block adds residually to the LT features. ``kv_ratio > 1`` applies the
    Linformer projection to the memory, with ``memory_len`` its maximum length per cloud.
    """

    def __init__(
        self,
        in_channels: int,
        dim: int,
        num_heads: int = 8,
        ffn_ratio: float = 2.0,
        dropout: float = 0.0,
        prenorm: bool = True,
        memory_len: int | None = None,
        kv_ratio: int = 1,
    ) -> None:
        super().__init__()
        self.mem_proj = nn.Identity() if in_channels == dim else nn.Linear(in_channels, dim)
        self.pe = PositionEncoding(dim)
        self.layer = TransformerDecoderLayer(
            dim, num_heads, ffn_ratio, dropout, prenorm, memory_len, kv_ratio
        )

    def forward(
        self,
        xyz: Tensor,
        feat: Tensor,
        offsets: Tensor,
        mem_xyz: Tensor,
        mem_feat: Tensor,
        mem_offsets: Tensor,
    ) -> Tensor:
        """``xyz (S,3)``, ``feat (S,dim)``, ``offsets``; memory ``mem_xyz (N,3)``, ``mem_feat (N,C_in)``."""
        tgt = feat + self.pe(xyz)
        mem = self.mem_proj(mem_feat) + self.pe(mem_xyz)
        outs = [
            self.layer(tgt[rows].unsqueeze(0), mem[mem_rows].unsqueeze(0))[0]
            for rows, mem_rows in zip(cloud_slices(offsets), cloud_slices(mem_offsets))
        ]
        return torch.cat(outs) if outs else tgt
