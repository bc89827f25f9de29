"""Box ops for ``(M, 7)`` boxes ``[x, y, z, dx, dy, dz, yaw]``: points in boxes, rotated IoU, NMS."""

from .ops import (
    boxes_iou3d,
    boxes_iou3d_aligned,
    boxes_iou_bev,
    nms_aligned,
    nms_rotated,
    points_in_boxes,
    points_in_boxes_mask,
    rotated_polygon_intersection_2d,
    rotated_polygon_iou_2d,
)

__all__ = [
    "boxes_iou3d",
    "boxes_iou3d_aligned",
    "boxes_iou_bev",
    "nms_aligned",
    "nms_rotated",
    "points_in_boxes",
    "points_in_boxes_mask",
    "rotated_polygon_intersection_2d",
    "rotated_polygon_iou_2d",
]
