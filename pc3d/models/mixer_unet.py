"""The serialized point U-Net with any token mixer in MEEPO's block layout (:class:`MixerBlock`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torch import nn

from pc3d.models.blocks.mixer_block import MixerBlock
from pc3d.models.losses.segmentation import SegmentationLoss
from pc3d.models.point import ORDERS
from pc3d.models.serialized_unet import SerializedUNet


class MixerUNet(SerializedUNet):
    """Serialized U-Net whose blocks are ``SubMConv3d -> mixer -> MLP`` (:class:`MixerBlock`).

    ``forward(batch) -> logits (N, classes)``, ``loss``, ``predict``
    (:class:`~pc3d.models.segmenter.Segmenter`). ``mixer`` is the token mixer's class (or dotted class
    path), built in every block as ``mixer(channels=C, num_heads=h, **mixer_args)`` with ``h`` from
    ``enc_num_heads`` / ``dec_num_heads`` for the block's stage. The layout arguments and ``criterion``
    are those of :class:`SerializedUNet`; ``mlp_ratio``, ``conv_kernel`` and ``mixer_norm`` configure
    every block.
    """

    def __init__(
        self,
        mixer: str | Callable[..., nn.Module],
        mixer_args: Mapping[str, Any] | None = None,
        in_channels: int = 6,
        num_classes: int = 20,
        grid_size: float = 0.02,
        orders: Sequence[str] = ORDERS,
        shuffle_orders: bool = True,
        strides: Sequence[int] = (2, 2, 2, 2),
        enc_depths: Sequence[int] = (2, 2, 2, 6, 2),
        enc_channels: Sequence[int] = (32, 64, 128, 256, 512),
        enc_num_heads: Sequence[int] = (2, 4, 8, 16, 32),
        dec_depths: Sequence[int] = (2, 2, 2, 2),
        dec_channels: Sequence[int] = (64, 64, 128, 256),
        dec_num_heads: Sequence[int] = (4, 4, 8, 16),
        mlp_ratio: float = 4.0,
        conv_kernel: int = 3,
        mixer_norm: str = "layer",
        drop_path: float = 0.3,
        stem_kernel: int = 5,
        criterion: SegmentationLoss | None = None,
    ) -> None:
        if len(enc_num_heads) != len(enc_depths) or len(dec_num_heads) != len(dec_depths):
            raise ValueError("enc_num_heads/dec_num_heads: expected one head count per stage")
        super().__init__(
            MixerBlock,
            in_channels=in_channels,
            num_classes=num_classes,
            grid_size=grid_size,
            orders=orders,
            shuffle_orders=shuffle_orders,
            strides=strides,
            enc_depths=enc_depths,
            enc_channels=enc_channels,
            dec_depths=dec_depths,
            dec_channels=dec_channels,
            drop_path=drop_path,
            stem_kernel=stem_kernel,
            criterion=criterion,
            block_args=dict(
                mixer=mixer,
                mixer_args=dict(mixer_args or {}),
                mlp_ratio=mlp_ratio,
                conv_kernel=conv_kernel,
                mixer_norm=mixer_norm,
            ),
            enc_block_args=[{"num_heads": h} for h in enc_num_heads],
            dec_block_args=[{"num_heads": h} for h in dec_num_heads],
        )
