"""MEEPO's CNN-Mamba block: sparse conv for locality, strided bidirectional Mamba for context."""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from pc3d.kernels.sparse import spconv
from pc3d.models.blocks.bimamba import DIRECTIONS, BiMamba
from pc3d.models.blocks.common import MLP, DropPath, make_norm
from pc3d.models.point import SerializedPoints


class MEEPOBlock(nn.Module):
    """``x += GELU(LN(SubMConv3d(x)))``; ``x += DropPath(BiMamba(RMSNorm(x)))``; ``x += DropPath(MLP(LN(x)))``.

    ``forward(feat (N, C), point, order_index) -> (N, C)``; the mixer scans along serialization
    order ``point.order[order_index]``, one sequence per cloud.
    """

    def __init__(
        self,
        channels: int,
        drop_path: float = 0.0,
        indice_key: str | None = None,
        conv_kernel: int = 3,
        d_state: int = 1,
        d_conv: int = 4,
        expand: float = 3.0,
        dt_rank: int | str = "auto",
        directions: Sequence[str] = DIRECTIONS,
        stride: int = 2,
        mlp_ratio: float = 3.0,
        mixer_norm: str = "rms",
        backend: str = "auto",
        recompute: bool = True,
    ) -> None:
        super().__init__()
        self.conv = spconv.SubMConv3d(channels, channels, conv_kernel, bias=True, indice_key=indice_key)
        self.conv_norm = nn.LayerNorm(channels)
        self.conv_act = nn.GELU()
        self.norm1 = make_norm(mixer_norm, channels)
        self.mixer = BiMamba(
            channels,
            d_state,
            d_conv,
            expand,
            dt_rank,
            directions,
            stride,
            backend=backend,
            recompute=recompute,
        )
        self.norm2 = nn.LayerNorm(channels)
        self.mlp = MLP(channels, int(channels * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, feat: Tensor, point: SerializedPoints, order_index: int) -> Tensor:
        conv = point.sparse_conv(self.conv, feat)
        feat = feat + self.conv_act(self.conv_norm(conv))
        feat = feat + self.drop_path(
            self.mixer(self.norm1(feat), point.offsets, point.order[order_index], point.inverse[order_index]),
            point.batch,
        )
        return feat + self.drop_path(self.mlp(self.norm2(feat)), point.batch)
