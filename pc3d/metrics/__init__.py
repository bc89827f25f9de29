"""Evaluation metrics shared by the Lightning tasks and the ``pc3d-eval`` tool.

Detection tasks take a :class:`DetectionMetric` by class path: :class:`IndoorMAP` (ScanNet, SUN RGB-D)
or :class:`KittiMetric` (the official KITTI protocol). They are imported on first use, so the numpy-only
evaluation code (``pc3d.metrics.kitti_eval``) loads without torch.
"""

import importlib

_LAZY = {
    "DetectionMetric": "pc3d.metrics.detection",
    "IndoorMAP": "pc3d.metrics.detection_indoor",
    "KittiMetric": "pc3d.metrics.kitti_metric",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pc3d.metrics' has no attribute {name!r}")


__all__ = ["DetectionMetric", "IndoorMAP", "KittiMetric"]
