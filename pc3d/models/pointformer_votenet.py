"""Pointformer backbone + VoteNet head: the indoor (ScanNet) detector."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from pc3d.data.batch import MissingField, PointBatch

from .heads.votenet import VoteNetHead
from .pointformer import Pointformer


class PointformerVoteNet(nn.Module):
    """VoteNet with a Pointformer backbone.

    Args:
        backbone: the :class:`~pc3d.models.pointformer.Pointformer` (default: the paper-size ScanNet one).
        head: the :class:`~pc3d.models.heads.votenet.VoteNetHead` (its ``mean_sizes`` are the dataset's).
        feat_channels: columns of ``batch.feat`` given to the backbone (default all; the official model
            uses the height above the floor only, e.g. ``[-1]`` when height is the last column).

    ``forward(batch)`` returns the head's outputs plus ``seed_xyz``, ``seed_indices``, ``seed_offsets``.
    ``loss(out, batch)`` needs ``batch.point["vote_target"] (N,3)`` (offset from each point to its
    object centre), ``batch.point["vote_mask"] (N,)``, ``boxes``, ``box_labels`` and ``box_offsets``.
    ``predict(out, batch)`` returns one ``{boxes, scores, labels}`` dict per cloud in the batch's frame.
    """

    def __init__(
        self,
        backbone: Pointformer | None = None,
        *,
        head: VoteNetHead,
        feat_channels: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone if backbone is not None else Pointformer()
        self.head = head
        self.feat_channels = list(feat_channels) if feat_channels is not None else None

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    def _feat(self, batch: PointBatch) -> Tensor:
        return batch.feat if self.feat_channels is None else batch.feat[:, self.feat_channels]

    def forward(self, batch: PointBatch) -> dict[str, Any]:
        bb = self.backbone(batch.coord, self._feat(batch), batch.offsets)
        out = self.head(bb["seed_xyz"], bb["seed_feat"], bb["seed_offsets"])
        out.update(seed_xyz=bb["seed_xyz"], seed_indices=bb["seed_indices"], seed_offsets=bb["seed_offsets"])
        return out

    def loss(self, out: dict[str, Any], batch: PointBatch) -> dict[str, Tensor]:
        for key in ("vote_target", "vote_mask"):
            if key not in batch.point:
                raise MissingField(
                    f"batch.point['{key}']: required by the VoteNet loss (use the det task data)"
                )
        if batch.boxes is None or batch.box_labels is None or batch.box_offsets is None:
            raise ValueError("batch.boxes/box_labels/box_offsets: required by the VoteNet loss")
        center, mask = self.head.vote_targets(
            out["seed_xyz"],
            out["seed_indices"],
            batch.coord,
            batch.point["vote_target"],
            batch.point["vote_mask"],
        )
        return self.head.loss(out, center, mask, batch.boxes, batch.box_labels, batch.box_offsets)

    def predict(self, out: dict[str, Any], batch: PointBatch) -> list[dict[str, Tensor]]:
        return self.head.predict(out, batch.coord, batch.offsets)
