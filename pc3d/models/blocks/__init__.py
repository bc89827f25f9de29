"""Blocks of the serialized point U-Net: MEEPO's CNN-Mamba block, PTv3's attention block, and the
generic :class:`MixerBlock` around any token mixer."""

from pc3d.models.blocks.bimamba import BiMamba
from pc3d.models.blocks.common import MLP, DropPath
from pc3d.models.blocks.meepo_block import MEEPOBlock
from pc3d.models.blocks.mixer_block import MixerBlock
from pc3d.models.blocks.ptv3_block import PTv3Block, SerializedAttention, patch_index

__all__ = [
    "MLP",
    "BiMamba",
    "DropPath",
    "MEEPOBlock",
    "MixerBlock",
    "PTv3Block",
    "SerializedAttention",
    "patch_index",
]
