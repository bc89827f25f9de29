"""KITTI result writer: LiDAR-frame predictions → ``<frame_id>.txt`` result files (16 columns)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from pc3d.data.kitti.calib import Calibration
from pc3d.data.kitti.labels import (
    format_label_lines,
    lidar_to_camera_boxes,
    project_boxes_to_image,
    wrap_angle,
)
from pc3d.io import write_text


def _numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _calib(calib: Calibration | Mapping) -> Calibration:
    return calib if isinstance(calib, Calibration) else Calibration.from_dict(calib)


def predictions_to_anno(
    boxes: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    calib: Calibration | Mapping,
    image_size: Sequence[int],
) -> dict[str, np.ndarray]:
    """LiDAR predictions of one frame → KITTI anno dict (for :func:`kitti_eval` or the writer).

    Args:
        boxes: ``(P, 7)`` LiDAR boxes ``[x, y, z, l, w, h, heading]`` (numpy or tensor).
        scores: ``(P,)`` confidences.
        labels: ``(P,)`` indices into ``class_names``.
        calib: :class:`Calibration` or its ``to_dict()`` form (as in the batch ``meta["calib"]``).
        image_size: ``(W, H)`` of image 2.

    The camera box is the OpenPCDet inverse transform; ``alpha = −atan2(−y, x) + ry`` (LiDAR
    centre), wrapped to [−π, π); the 2D box is the extent of the 8 projected corners clipped to the image.
    """
    boxes = _numpy(boxes).astype(np.float64).reshape(-1, 7)
    scores = _numpy(scores).astype(np.float64).reshape(-1)
    labels = _numpy(labels).astype(np.int64).reshape(-1)
    if not (len(boxes) == len(scores) == len(labels)):
        raise ValueError(f"boxes/scores/labels: lengths {len(boxes)}, {len(scores)}, {len(labels)} differ")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(class_names)):
        raise ValueError(
            f"labels: values must index class_names (0..{len(class_names) - 1}), got {labels.tolist()}"
        )
    cal = _calib(calib)
    loc, dims, ry = lidar_to_camera_boxes(boxes, cal)
    alpha = wrap_angle(-np.arctan2(-boxes[:, 1], boxes[:, 0]) + ry)
    bbox = project_boxes_to_image(loc, dims, ry, cal, (int(image_size[0]), int(image_size[1])))
    return {
        "name": np.asarray([class_names[i] for i in labels], dtype="<U16"),
        "truncated": np.zeros(len(boxes)),
        "occluded": np.zeros(len(boxes), dtype=np.int64),
        "alpha": alpha,
        "bbox": bbox,
        "dimensions": dims,
        "location": loc,
        "rotation_y": ry,
        "score": scores,
    }


def write_kitti_result(
    out_dir: str | Path,
    frame_id: str,
    boxes: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    calib: Calibration | Mapping,
    image_size: Sequence[int],
) -> Path:
    """Write ``<out_dir>/<frame_id>.txt`` (atomically) and return its path; an empty file when P = 0."""
    anno = predictions_to_anno(boxes, scores, labels, class_names, calib, image_size)
    path = Path(out_dir) / f"{frame_id}.txt"
    write_text(path, format_label_lines(anno, with_score=True))
    return path
