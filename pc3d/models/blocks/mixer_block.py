"""A serialized U-Net block around any token mixer: sparse conv for locality, the mixer for context."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import Tensor, nn

from pc3d.kernels.sparse import spconv
from pc3d.models.blocks.common import MLP, DropPath, make_norm
from pc3d.models.point import SerializedPoints
from pc3d.models.resolve import resolve_class


class MixerBlock(nn.Module):
    """``x += GELU(LN(SubMConv3d(x)))``; ``x += DropPath(mixer(Norm(x)))``; ``x += DropPath(MLP(LN(x)))``.

    The layout of :class:`~pc3d.models.blocks.meepo_block.MEEPOBlock` with the mixer injected, so
    mixers are compared at equal widths, depths and surroundings. ``mixer`` is a class, factory or
    dotted class path, built as ``mixer(channels=C, **mixer_args)`` (plus ``num_heads`` when given:
    the per-stage head count, e.g. from ``enc_block_args``) and called as
    ``mixer(x (N, C), point, order_index) -> (N, C)``, where ``point`` is the level's
    :class:`~pc3d.models.point.SerializedPoints` (clouds packed by ``point.offsets``) and
    ``order_index`` the serialization order this block uses.

    ``forward(feat (N, C), point, order_index) -> (N, C)``.
    """

    def __init__(
        self,
        channels: int,
        mixer: Callable[..., nn.Module] | str,
        drop_path: float = 0.0,
        indice_key: str | None = None,
        mixer_args: Mapping[str, Any] | None = None,
        num_heads: int | None = None,
        conv_kernel: int = 3,
        mlp_ratio: float = 4.0,
        mixer_norm: str = "layer",
    ) -> None:
        super().__init__()
        args = dict(mixer_args or {})
        if num_heads is not None:
            if "num_heads" in args:
                raise ValueError(
                    "mixer_args: num_heads is the stage's head count (enc_num_heads/dec_num_heads); "
                    f"remove it from mixer_args (got {args['num_heads']!r})"
                )
            args["num_heads"] = num_heads
        self.conv = spconv.SubMConv3d(channels, channels, conv_kernel, bias=True, indice_key=indice_key)
        self.conv_norm = nn.LayerNorm(channels)
        self.conv_act = nn.GELU()
        self.norm1 = make_norm(mixer_norm, channels)
        self.mixer = resolve_class(mixer, "mixer")(channels=channels, **args)
        self.norm2 = nn.LayerNorm(channels)
        self.mlp = MLP(channels, int(channels * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, feat: Tensor, point: SerializedPoints, order_index: int) -> Tensor:
        conv = point.sparse_conv(self.conv, feat)
        feat = feat + self.conv_act(self.conv_norm(conv))
        feat = feat + self.drop_path(self.mixer(self.norm1(feat), point, order_index), point.batch)
        return feat + self.drop_path(self.mlp(self.norm2(feat)), point.batch)


__all__ = ["MixerBlock"]
