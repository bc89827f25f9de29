"""PTv3 baseline: the serialized point U-Net with xCPE + serialized patch attention blocks (arXiv 2312.10035)."""

from __future__ import annotations

from collections.abc import Sequence

from pc3d.models.blocks.ptv3_block import PTv3Block
from pc3d.models.losses.segmentation import SegmentationLoss
from pc3d.models.point import ORDERS
from pc3d.models.serialized_unet import SerializedUNet


class PTv3(SerializedUNet):
    """PTv3 (Pointcept ``v3m1`` ScanNet config by default, 46.2 M parameters).

    ``forward(batch) -> logits (N, classes)``, ``loss``, ``predict``
    (:class:`~pc3d.models.segmenter.Segmenter`). ``enc_num_heads`` /
    ``dec_num_heads`` give the heads per stage; ``patch_size`` is the serialized patch length;
    ``attn_impl`` picks fused (``"sdpa"``) or explicit (``"math"``, Pointcept without flash) attention;
    ``criterion`` is that of :class:`SerializedUNet`.
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
        enc_num_heads: Sequence[int] = (2, 4, 8, 16, 32),
        dec_depths: Sequence[int] = (2, 2, 2, 2),
        dec_channels: Sequence[int] = (64, 64, 128, 256),
        dec_num_heads: Sequence[int] = (4, 4, 8, 16),
        patch_size: int = 1024,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        drop_path: float = 0.3,
        stem_kernel: int = 5,
        cpe_kernel: int = 3,
        attn_impl: str = "sdpa",
        criterion: SegmentationLoss | None = None,
    ) -> None:
        if len(enc_num_heads) != len(enc_depths) or len(dec_num_heads) != len(dec_depths):
            raise ValueError("enc_num_heads/dec_num_heads: expected one head count per stage")
        super().__init__(
            PTv3Block,
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
                patch_size=patch_size,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                qk_scale=qk_scale,
                attn_drop=attn_drop,
                proj_drop=proj_drop,
                cpe_kernel=cpe_kernel,
                attn_impl=attn_impl,
            ),
            enc_block_args=[{"num_heads": h} for h in enc_num_heads],
            dec_block_args=[{"num_heads": h} for h in dec_num_heads],
        )
