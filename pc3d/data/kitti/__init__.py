"""KITTI object detection: calibration, labels, preprocessing, augmentation, datamodule, result writer.

Formats and default splits: docs/data/kitti.md. ``KittiDataModule``/``KittiDataset`` are imported lazily
so that light users (the eval CLI, preprocessing workers) do not import Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

# Light modules are imported eagerly (this also keeps the function ``preprocess`` from being
# shadowed by the submodule of the same name); Lightning-based ones lazily.
from pc3d.data.kitti.calib import Calibration, fov_mask
from pc3d.data.kitti.io import read_image_size, read_velodyne
from pc3d.data.kitti.labels import (
    anno_from_lists,
    anno_to_lidar_boxes,
    camera_to_lidar_boxes,
    difficulty_level,
    lidar_to_camera_boxes,
    project_boxes_to_image,
    read_label,
)
from pc3d.data.kitti.preprocess import load_frame, load_infos, preprocess
from pc3d.data.kitti.results import predictions_to_anno, write_kitti_result

_LAZY = {"KittiDataModule": "datamodule", "KittiDataset": "dataset"}

__all__ = [
    "Calibration",
    "KittiDataModule",
    "KittiDataset",
    "anno_from_lists",
    "anno_to_lidar_boxes",
    "camera_to_lidar_boxes",
    "difficulty_level",
    "fov_mask",
    "lidar_to_camera_boxes",
    "load_frame",
    "load_infos",
    "predictions_to_anno",
    "preprocess",
    "project_boxes_to_image",
    "read_image_size",
    "read_label",
    "read_velodyne",
    "write_kitti_result",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
