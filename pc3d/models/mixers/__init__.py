"""Token mixers of the serialized U-Net (:class:`~pc3d.models.mixer_unet.MixerUNet`).

Every mixer is built as ``Mixer(channels=C, num_heads=h, **mixer_args)`` and called as
``mixer(x (N, C), point, order_index) -> (N, C)``: ``point`` is the level's
:class:`~pc3d.models.point.SerializedPoints` (clouds packed by ``point.offsets``, never mixed) and
``order_index`` the serialization order of the block.
"""
