"""One Pointformer set-abstraction block: FPS + ball query, LT, optional LGT, optional refinement, GT."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import Tensor, nn

from .global_transformer import GlobalTransformer, LocalGlobalTransformer
from .grouping import group, sample
from .local_transformer import LocalTransformer


class PointformerBlock(nn.Module):
    """Down-sample a packed point set with transformers.

    ``forward(xyz (N,3), feat (N,C_in), offsets (B+1,))`` -> ``(new_xyz (S,3), new_feat (S,out_channels),
    new_offsets (B+1,), idx (S,))`` where ``S = B * num_points`` and ``idx`` indexes the input rows
    chosen by D-FPS.

    Steps: D-FPS picks ``num_points`` centroids per cloud; ball query (``radius``, ``num_samples``)
    groups input points with xyz relative to the centroid; the Local Transformer (width ``dim``)
    encodes each group. With ``use_local_global`` the Local-Global Transformer adds cross-attention
    from the centroids to the whole input cloud (residual). With ``refine`` the centroid becomes the
    attention-weighted mean of its group's xyz (weights from the last LT layer, averaged over heads and
    queries) — a differentiable shift towards dense regions. With ``use_global`` the Global Transformer
    runs over all centroids of a cloud and maps ``dim -> out_channels``; otherwise a linear layer does.
    ``global_attention`` (a class or dotted class path, with ``global_attention_args``) replaces the
    Global Transformer's full attention (see :class:`GlobalTransformer`).
    """

    def __init__(
        self,
        in_channels: int,
        num_points: int,
        radius: float,
        num_samples: int,
        dim: int,
        out_channels: int,
        num_heads: int = 8,
        num_local_layers: int = 2,
        num_global_layers: int = 2,
        ffn_ratio: float = 2.0,
        dropout: float = 0.0,
        global_dropout: float = 0.0,
        prenorm: bool = True,
        use_global: bool = True,
        use_local_global: bool = False,
        refine: bool = False,
        linformer_ratio: int = 1,
        memory_len: int | None = None,
        global_attention: Callable[..., nn.Module] | str | None = None,
        global_attention_args: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if num_points < 1 or num_samples < 1 or radius <= 0:
            raise ValueError(
                f"num_points/num_samples/radius: expected positive values, "
                f"got {num_points}/{num_samples}/{radius}"
            )
        self.num_points, self.radius, self.num_samples = num_points, radius, num_samples
        self.refine = refine
        self.local = LocalTransformer(
            in_channels, dim, dim, num_heads, num_local_layers, ffn_ratio, dropout, prenorm
        )
        self.local_global = (
            LocalGlobalTransformer(
                in_channels, dim, num_heads, ffn_ratio, dropout, prenorm, memory_len, linformer_ratio
            )
            if use_local_global
            else None
        )
        self.glob = (
            GlobalTransformer(
                dim,
                out_channels,
                num_heads,
                num_global_layers,
                ffn_ratio,
                global_dropout,
                prenorm,
                num_points,
                linformer_ratio,
                global_attention,
                global_attention_args,
            )
            if use_global
            else None
        )
        self.out = nn.Linear(dim, out_channels) if not use_global else None

    def forward(self, xyz: Tensor, feat: Tensor, offsets: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        idx, new_offsets = sample(xyz, offsets, self.num_points)
        centers = xyz[idx]
        nbr = group(xyz, offsets, centers, new_offsets, self.radius, self.num_samples)
        grouped_xyz = xyz[nbr]  # (S, k, 3)
        rel = grouped_xyz - centers.unsqueeze(1)
        x, w = self.local(feat[nbr], rel, return_weights=self.refine)
        new_xyz = centers
        if self.refine:
            new_xyz = (w.unsqueeze(-1) * grouped_xyz).sum(1)
        if self.local_global is not None:
            x = x + self.local_global(new_xyz, x, new_offsets, xyz, feat, offsets)
        x = self.glob(new_xyz, x, new_offsets) if self.glob is not None else self.out(x)
        return new_xyz, x, new_offsets, idx
