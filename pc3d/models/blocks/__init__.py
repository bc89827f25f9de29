"""Mixer blocks for the serialized point U-Net: MEEPO's CNN-Mamba block and PTv3's attention block."""

from pc3d.models.blocks.bimamba import BiMamba
from pc3d.models.blocks.common import MLP, DropPath
from pc3d.models.blocks.meepo_block import MEEPOBlock
from pc3d.models.blocks.ptv3_block import PTv3Block, SerializedAttention, patch_index

__all__ = [
    "MLP",
    "BiMamba",
    "DropPath",
    "MEEPOBlock",
    "PTv3Block",
    "SerializedAttention",
    "patch_index",
]
