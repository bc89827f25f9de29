"""Token mixers of the serialized U-Net (:class:`~pc3d.models.mixer_unet.MixerUNet`).

Every mixer is built as ``Mixer(channels=C, num_heads=h, **mixer_args)`` and called as
``mixer(x (N, C), point, order_index) -> (N, C)``: ``point`` is the level's
:class:`~pc3d.models.point.SerializedPoints` (clouds packed by ``point.offsets``, never mixed) and
``order_index`` the serialization order of the block.
"""

from pc3d.models.mixers.agent import AgentAttention
from pc3d.models.mixers.deformable import DeformableAttention
from pc3d.models.mixers.inline import InLineAttention
from pc3d.models.mixers.mediator import MediatorAttention, set_num_mediators
from pc3d.models.mixers.mlla import MLLA
from pc3d.models.mixers.slide import SlideAttention

__all__ = [
    "MLLA",
    "AgentAttention",
    "DeformableAttention",
    "InLineAttention",
    "MediatorAttention",
    "SlideAttention",
    "set_num_mediators",
]
