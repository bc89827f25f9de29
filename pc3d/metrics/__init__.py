"""Evaluation metrics shared by the Lightning tasks and the ``pc3d-eval`` tool.

Detection tasks take a :class:`DetectionMetric` by class path: :class:`IndoorMAP` (ScanNet, SUN RGB-D)
or :class:`KittiMetric` (the official KITTI protocol).
"""

from pc3d.metrics.detection import DetectionMetric
from pc3d.metrics.detection_indoor import IndoorMAP
from pc3d.metrics.kitti_metric import KittiMetric

__all__ = ["DetectionMetric", "IndoorMAP", "KittiMetric"]
