"""Local Transformer: self-attention inside each ball-query group, then max-pool."""

from __future__ import annotations

from torch import Tensor, nn

from .attention import PositionEncoding, TransformerEncoderLayer


class LocalTransformer(nn.Module):
    """Transformer over the members of every local group (Pointformer LT).

    ``grouped_feat (M, k, C_in)`` and ``grouped_rel_xyz (M, k, 3)`` (member xyz minus the centroid, not
    divided by the radius) -> ``(feat (M, C_out), weights (M, k) | None)``.

    Features are projected to ``dim`` (identity when ``C_in == dim``), the position encoding of the
    relative xyz is added, ``num_layers`` encoder layers run over each group (no mask, duplicate
    padding members take part as in the reference), the group is max-pooled and ``Linear(dim, C_out)``
    maps it out. With ``return_weights`` the last layer's attention maps, averaged over heads and over
    query rows, give one weight per member (they sum to 1) for coordinate refinement. The output is
    invariant to the order of a group's members.
    """

    def __init__(
        self,
        in_channels: int,
        dim: int,
        out_channels: int,
        num_heads: int = 8,
        num_layers: int = 2,
        ffn_ratio: float = 2.0,
        dropout: float = 0.0,
        prenorm: bool = True,
    ) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers: Local Transformer needs >= 1 layer, got {num_layers}")
        self.in_proj = nn.Identity() if in_channels == dim else nn.Linear(in_channels, dim)
        self.pe = PositionEncoding(dim)
        self.layers = nn.ModuleList(
            TransformerEncoderLayer(dim, num_heads, ffn_ratio, dropout, prenorm) for _ in range(num_layers)
        )
        self.out = nn.Linear(dim, out_channels)

    def forward(
        self, grouped_feat: Tensor, grouped_rel_xyz: Tensor, return_weights: bool = False
    ) -> tuple[Tensor, Tensor | None]:
        x = self.in_proj(grouped_feat) + self.pe(grouped_rel_xyz)
        w = None
        for i, layer in enumerate(self.layers):
            last = i == len(self.layers) - 1
            x, w = layer(x, need_weights=return_weights and last)
        weights = w.mean(1) if w is not None else None
        return self.out(x.max(1).values), weights
