"""The interface of per-point segmentation networks, shared by every serialized U-Net.

A segmenter is an ``nn.Module`` with

- ``forward(batch: PointBatch) -> logits (N, num_classes)``, one row per row of ``batch.coord``;
- ``loss(logits, batch) -> {"loss", "ce", "lovasz"}`` against ``batch.point["segment"] (N,)``, through
  its ``criterion`` (:class:`~pc3d.models.losses.SegmentationLoss`);
- ``predict(logits, batch) -> records``, one dict per cloud: ``pred (n_i,)`` int64 (argmax of the
  logits) and ``probs (n_i, num_classes)`` float32 (softmax), rows of the batch's points.

Detectors (:mod:`pc3d.models.pointformer_votenet`, :mod:`pc3d.models.pointformer_pointrcnn`) follow the
same three calls with their own outputs, so the tasks only glue them to Lightning.
"""

from __future__ import annotations

from torch import Tensor

from pc3d.data.batch import MissingField, PointBatch
from pc3d.models.losses.segmentation import SegmentationLoss


class Segmenter:
    """``loss``/``predict`` of a network whose ``forward(batch)`` returns per-point logits ``(N, C)``.

    Mixed into an ``nn.Module`` that registers a ``criterion`` (:class:`SegmentationLoss`).
    """

    criterion: SegmentationLoss

    @property
    def ignore_index(self) -> int:
        """Label of unlabelled points (the criterion's)."""
        return self.criterion.ignore_index

    def loss(self, out: Tensor, batch: PointBatch) -> dict[str, Tensor]:
        """The criterion on ``out (N, C)`` against ``batch.point["segment"] (N,)``: ``loss``, ``ce``, ``lovasz``."""
        if "segment" not in batch.point:
            raise MissingField("batch.point['segment']: segmentation batches need per-point labels")
        return self.criterion(out, batch.point["segment"])

    def predict(self, out: Tensor, batch: PointBatch) -> list[dict[str, Tensor]]:
        """One record per cloud: ``pred (n_i,)`` int64 and ``probs (n_i, C)`` float32."""
        pred, probs = out.argmax(1), out.float().softmax(-1)
        return [{"pred": p, "probs": q} for p, q in zip(batch.split(pred), batch.split(probs))]
