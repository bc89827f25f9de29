"""MEEPO: the serialized point U-Net with CNN-Mamba blocks (arXiv 2410.21211; layout of PTv3)."""

from __future__ import annotations

from collections.abc import Sequence

from pc3d.models.blocks.bimamba import DIRECTIONS
from pc3d.models.blocks.meepo_block import MEEPOBlock
from pc3d.models.losses.segmentation import SegmentationLoss
from pc3d.models.point import ORDERS
from pc3d.models.serialized_unet import SerializedUNet


class MEEPO(SerializedUNet):
    """MEEPO segmentation backbone + linear head; ``forward(batch) -> logits (N, classes)``, ``loss``, ``predict``
    (:class:`~pc3d.models.segmenter.Segmenter`).

    Mixer hyper-parameters (``d_state``, ``d_conv``, ``expand``, ``directions``, ``scan_stride``,
    ``mlp_ratio``, ``conv_kernel``) apply to every block; the layout arguments and ``criterion`` are those
    of :class:`SerializedUNet`. ``mixer_recompute`` trades about one extra forward of the mixers' directions
    in training for not storing their activations (:class:`~pc3d.models.blocks.bimamba.BiMamba`).
    """

    def __init__(
        self,
        in_channels: int = 6,
        num_classes: int = 20,
        grid_size: float = 0.02,
        orders: Sequence[str] = ORDERS,
        shuffle_orders: bool = True,
        strides: Sequence[int] = (2, 2, 2, 2),
        enc_depths: Sequence[int] = (2, 2, 2, 6, 2),
        enc_channels: Sequence[int] = (32, 64, 128, 256, 512),
        dec_depths: Sequence[int] = (2, 2, 2, 2),
        dec_channels: Sequence[int] = (64, 64, 128, 256),
        drop_path: float = 0.3,
        stem_kernel: int = 5,
        d_state: int = 1,
        d_conv: int = 4,
        expand: float = 3.0,
        dt_rank: int | str = "auto",
        directions: Sequence[str] = DIRECTIONS,
        scan_stride: int = 2,
        mlp_ratio: float = 3.0,
        conv_kernel: int = 3,
        mixer_norm: str = "rms",
        scan_backend: str = "auto",
        mixer_recompute: bool = True,
        criterion: SegmentationLoss | None = None,
    ) -> None:
        super().__init__(
            MEEPOBlock,
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
                d_state=d_state,
                d_conv=d_conv,
                expand=expand,
                dt_rank=dt_rank,
                directions=tuple(directions),
                stride=scan_stride,
                mlp_ratio=mlp_ratio,
                conv_kernel=conv_kernel,
                mixer_norm=mixer_norm,
                backend=scan_backend,
                recompute=mixer_recompute,
            ),
        )
