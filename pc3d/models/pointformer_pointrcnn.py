"""Pointformer backbone + PointRCNN-style head: the outdoor (KITTI) detector."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from pc3d.data.batch import PointBatch

from .heads.common import box_ops
from .heads.pointrcnn import PointRCNNHead
from .pointformer import Pointformer


def kitti_backbone() -> Pointformer:
    """Pointformer sized like PointRCNN's PointNet++ (mmdet3d port): 16,384 points -> 4096/1024/256/64,
    single-scale radii 0.5/1.0/2.0/4.0 with 32 samples, features propagated back to every point (128 ch)."""
    return Pointformer(
        in_channels=1,
        stem_channels=32,
        num_points=(4096, 1024, 256, 64),
        radii=(0.5, 1.0, 2.0, 4.0),
        num_samples=(32, 32, 32, 32),
        dims=(64, 128, 256, 256),
        out_channels=(128, 256, 256, 512),
        num_heads=4,
        global_dropout=0.0,
        use_local_global=True,
        refine=False,
        fp_channels=((256, 256), (256, 256), (256, 128), (128, 128)),
    )


class PointformerPointRCNN(nn.Module):
    """PointRCNN with a Pointformer backbone that propagates features back to every input point.

    ``batch.feat`` holds the reflectance (``feat_channels`` selects columns for the backbone; the
    stage-2 pooling uses column 0 as intensity). ``loss`` uses ``batch.point["box_index"]`` (index of the
    containing box in ``batch.boxes``, -1 background; computed with ``points_in_boxes`` when absent).
    ``predict`` returns LiDAR-frame ``{boxes, scores, labels}`` per cloud.
    """

    def __init__(
        self,
        backbone: Pointformer | None = None,
        head: PointRCNNHead | None = None,
        feat_channels: list[int] | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone if backbone is not None else kitti_backbone()
        if len(self.backbone.fps) != len(self.backbone.blocks):
            raise ValueError(
                "backbone: PointRCNN needs per-point features (len(fp_channels) == number of blocks)"
            )
        self.head = head if head is not None else PointRCNNHead(in_channels=self.backbone.out_channels)
        self.feat_channels = feat_channels

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    def forward(self, batch: PointBatch) -> dict[str, Any]:
        feat = batch.feat if self.feat_channels is None else batch.feat[:, self.feat_channels]
        bb = self.backbone(batch.coord, feat, batch.offsets)
        return self.head(
            batch.coord,
            batch.feat[:, :1],
            bb["seed_feat"],
            batch.offsets,
            batch.boxes,
            batch.box_labels,
            batch.box_offsets,
        )

    def fg_box_index(self, batch: PointBatch) -> Tensor:
        """Global index into ``batch.boxes`` of the box containing each point, -1 for background ``(N,)``."""
        if batch.boxes is None or batch.box_labels is None or batch.box_offsets is None:
            raise ValueError("batch.boxes/box_labels/box_offsets: required by the PointRCNN loss")
        if "box_index" in batch.point:  # already global (PointBatch.collate)
            return batch.point["box_index"].long()
        index = torch.full((len(batch.coord),), -1, dtype=torch.long, device=batch.coord.device)
        for i, (s, e) in enumerate(zip(batch.offsets[:-1].tolist(), batch.offsets[1:].tolist())):
            bs, be = batch.box_offsets[i].item(), batch.box_offsets[i + 1].item()
            if be > bs:
                local = box_ops().points_in_boxes(batch.coord[s:e], batch.boxes[bs:be]).long()
                index[s:e] = local.where(local < 0, local + bs)
        return index

    def loss(self, out: dict[str, Any], batch: PointBatch) -> dict[str, Tensor]:
        return self.head.loss(out, batch.coord, self.fg_box_index(batch), batch.boxes, batch.box_labels)

    def predict(self, out: dict[str, Any], batch: PointBatch) -> list[dict[str, Tensor]]:
        return self.head.predict(out)
