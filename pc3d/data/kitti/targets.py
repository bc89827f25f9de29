"""Point-wise targets for point-based detection heads (PointRCNN stage 1)."""

from __future__ import annotations

import numpy as np

from pc3d.data.kitti.augment import points_in_boxes


def point_targets(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Box assignment of every point.

    Args:
        points: ``(N, >=3)`` LiDAR points.
        boxes: ``(M, 7)`` LiDAR boxes ``[x, y, z, l, w, h, heading]`` of the cloud.

    Returns:
        ``box_index (N,)`` int64: the index (within this cloud's boxes) of a box containing the point,
        −1 for background (foreground is ``box_index >= 0``).
    """
    return points_in_boxes(points, np.asarray(boxes).reshape(-1, 7))
