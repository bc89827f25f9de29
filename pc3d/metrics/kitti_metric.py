"""The official KITTI object evaluation as a detection task's metric."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from pc3d.metrics.detection import DetectionMetric

DIFFICULTIES = ("easy", "moderate", "hard")


class KittiMetric(DetectionMetric):
    """Official KITTI AP (:func:`pc3d.metrics.kitti_eval.kitti_eval`: bbox, bev and 3d, R11 and R40, per
    class and difficulty) over every frame of a split and every DDP rank.

    Ground truth comes from each frame's ``batch.meta[i]["annos"]``; the LiDAR-frame detections are
    converted to the camera frame with ``meta["calib"]`` and ``meta["image_size"]``, as
    ``KittiDataModule`` provides them for labelled splits. Scores are named
    ``<class>/<bbox|bev|3d>_<R11|R40>_<difficulty>`` (e.g. ``Car/3d_R40_moderate``, shown in the
    progress bar).
    """

    def __init__(self) -> None:
        super().__init__()
        self.gt: list[dict] = []
        self.dt: list[dict] = []

    @property
    def progress_bar(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(f"{name}/3d_R40_moderate" for name in self.class_names)

    def update(self, preds: Sequence[dict[str, Tensor]], batch: Any) -> None:
        self.add(preds, batch.meta)

    def add(self, preds: Sequence[dict[str, Tensor]], metas: Sequence[dict[str, Any]]) -> None:
        """Frames given by their predictions and ``meta`` dicts (``annos``, ``calib``, ``image_size``)."""
        from pc3d.data.kitti.results import predictions_to_anno

        if not self.class_names:
            raise ValueError(
                "class_names: the KITTI metric needs the class names (e.g. [Car, Pedestrian, Cyclist])"
            )
        for i, (p, m) in enumerate(zip(preds, metas)):
            for key in ("annos", "calib", "image_size"):
                if m.get(key) is None:
                    raise ValueError(
                        f"batch.meta[{i}]['{key}']: required by the KITTI metric (labelled split)"
                    )
            self.gt.append(m["annos"])
            self.dt.append(
                predictions_to_anno(
                    p["boxes"], p["scores"], p["labels"], self.class_names, m["calib"], m["image_size"]
                )
            )

    def evaluate(self) -> dict[str, dict[str, list[float]]]:
        """The official tables ``{class: {"3d_R40": [easy, moderate, hard], ...}}`` over all ranks."""
        from pc3d.metrics.kitti_eval import kitti_eval

        gt, dt = self.gt, self.dt
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            parts: list[Any] = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(parts, (gt, dt))
            gt = [a for g, _ in parts for a in g]
            dt = [a for _, d in parts for a in d]
        return kitti_eval(gt, dt, classes=self.class_names)

    def compute(self) -> dict[str, float]:
        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        if not self.gt and not distributed:
            return {}
        out = {}
        for cls, table in self.evaluate().items():
            for key, values in table.items():
                for difficulty, value in zip(DIFFICULTIES, values):
                    if value == value:
                        out[f"{cls}/{key}_{difficulty}"] = float(value)
        return out

    def reset(self) -> None:
        self.gt, self.dt = [], []


__all__ = ["KittiMetric"]
