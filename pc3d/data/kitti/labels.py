"""KITTI ``label_2`` / result files: parsing, difficulty levels and box conversions.

Annotations are dicts of column arrays in the OpenPCDet / mmdet3d ``annos`` layout, so they can
be fed to :func:`pc3d.metrics.kitti_eval.kitti_eval` directly:

=============== ========= =====================================================
key             shape     meaning
=============== ========= =====================================================
``name``        (N,) str  Car, Van, Truck, Pedestrian, Person_sitting, Cyclist, Tram, Misc, DontCare
``truncated``   (N,) f64  0 (fully in image) .. 1
``occluded``    (N,) i64  0 visible, 1 partly, 2 largely, 3 unknown
``alpha``       (N,) f64  observation angle [−π, π]
``bbox``        (N, 4)    left, top, right, bottom in image-2 pixels
``dimensions``  (N, 3)    **l, h, w** (reordered from the file's h, w, l)
``location``    (N, 3)    bottom centre in the rectified camera frame
``rotation_y``  (N,) f64  yaw about camera +y
``score``       (N,) f64  16th column of result files, 0 for labels
=============== ========= =====================================================

LiDAR boxes follow OpenPCDet: ``[x, y, z, l, w, h, heading]`` with the geometric centre
(``rect_to_lidar(location)`` and ``z += h/2``) and ``heading = −(ry + π/2)`` wrapped to [−π, π).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pc3d.data.kitti.calib import Calibration
from pc3d.data.kitti.io import read_text

#: Exclusive difficulty thresholds (index 0 easy, 1 moderate, 2 hard): KITTI devkit / datasets.md B3.
MIN_HEIGHT = (40.0, 25.0, 25.0)
MAX_OCCLUSION = (0, 1, 2)
MAX_TRUNCATION = (0.15, 0.30, 0.50)

#: Object classes of KITTI ``label_2`` files (devkit readme).
KITTI_CLASSES = ("Car", "Van", "Truck", "Pedestrian", "Person_sitting", "Cyclist", "Tram", "Misc", "DontCare")

ANNO_KEYS = (
    "name",
    "truncated",
    "occluded",
    "alpha",
    "bbox",
    "dimensions",
    "location",
    "rotation_y",
    "score",
)


def empty_anno() -> dict[str, np.ndarray]:
    """An annotation dict with zero objects."""
    return {
        "name": np.zeros(0, dtype="<U16"),
        "truncated": np.zeros(0),
        "occluded": np.zeros(0, dtype=np.int64),
        "alpha": np.zeros(0),
        "bbox": np.zeros((0, 4)),
        "dimensions": np.zeros((0, 3)),
        "location": np.zeros((0, 3)),
        "rotation_y": np.zeros(0),
        "score": np.zeros(0),
    }


def parse_label_text(text: str, source: str = "<label>", allow_score: bool = True) -> dict[str, np.ndarray]:
    """Parse the 15-column (16 with ``score``) lines of a label/result file into an anno dict.

    Raises ``ValueError`` naming ``source`` and the line number for a malformed line (wrong column
    count, a class name not in :data:`KITTI_CLASSES`, non-numeric or non-finite value, an
    occlusion that is not an integer in -1..3, negative box size other than DontCare's ``-1``).
    """
    rows: list[list[float]] = []
    names: list[str] = []
    ncols = {15, 16} if allow_score else {15}
    for lineno, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) not in ncols:
            want = " or ".join(map(str, sorted(ncols)))
            raise ValueError(f"{source}:{lineno}: expected {want} columns, got {len(parts)}")
        if parts[0] not in KITTI_CLASSES:
            raise ValueError(
                f"{source}:{lineno}: unknown class {parts[0][:40]!r}; expected one of {', '.join(KITTI_CLASSES)}"
            )
        try:
            vals = [float(v) for v in parts[1:]]
        except ValueError as e:
            raise ValueError(f"{source}:{lineno}: non-numeric value ({e})") from e
        if not np.isfinite(vals).all():
            raise ValueError(f"{source}:{lineno}: non-finite value in {line.strip()!r}")
        if vals[1] != int(vals[1]) or not -1 <= vals[1] <= 3:
            raise ValueError(f"{source}:{lineno}: occluded must be an integer in -1..3, got {parts[2]!r}")
        if parts[0] != "DontCare" and min(vals[7:10]) < 0:
            raise ValueError(f"{source}:{lineno}: negative box size h, w, l = {vals[7:10]}")
        if len(vals) == 14:
            vals.append(0.0)
        names.append(parts[0])
        rows.append(vals)
    if not rows:
        return empty_anno()
    a = np.asarray(rows, dtype=np.float64)
    return {
        "name": np.asarray(names, dtype="<U16"),
        "truncated": a[:, 0],
        "occluded": a[:, 1].astype(np.int64),
        "alpha": a[:, 2],
        "bbox": a[:, 3:7],
        "dimensions": a[:, [9, 7, 8]],  # file h, w, l → l, h, w
        "location": a[:, 10:13],
        "rotation_y": a[:, 13],
        "score": a[:, 14],
    }


def read_label(path: str | Path, allow_score: bool = True) -> dict[str, np.ndarray]:
    """Read a ``label_2`` or result ``.txt`` file (see :func:`parse_label_text`)."""
    return parse_label_text(read_text(path, "label"), source=str(path), allow_score=allow_score)


def format_label_lines(anno: dict[str, np.ndarray], with_score: bool = True) -> str:
    """Inverse of :func:`parse_label_text`: one line per object, 15 (or 16 with score) columns."""
    lines = []
    for i in range(len(anno["name"])):
        l, h, w = anno["dimensions"][i]
        cols = [
            anno["name"][i],
            f"{anno['truncated'][i]:.2f}",
            f"{int(anno['occluded'][i])}",
            f"{anno['alpha'][i]:.4f}",
            *(f"{v:.2f}" for v in anno["bbox"][i]),
            f"{h:.4f}",
            f"{w:.4f}",
            f"{l:.4f}",
            *(f"{v:.4f}" for v in anno["location"][i]),
            f"{anno['rotation_y'][i]:.4f}",
        ]
        if with_score:
            cols.append(f"{anno['score'][i]:.6f}")
        lines.append(" ".join(cols))
    return "\n".join(lines) + ("\n" if lines else "")


def difficulty_level(anno: dict[str, np.ndarray]) -> np.ndarray:
    """Exclusive KITTI difficulty per object ``(N,)`` int64: 0 easy, 1 moderate, 2 hard, −1 none.

    Uses exactly the evaluation's rule (datasets.md B3): an object belongs to level ``k`` when
    ``occluded ≤ MAX_OCCLUSION[k]``, ``truncated ≤ MAX_TRUNCATION[k]`` and bbox height
    ``y2 − y1 > MIN_HEIGHT[k]``; the level is the easiest one it belongs to. DontCare is −1.
    (OpenPCDet's info files use ``height + 1 ≥ min`` instead, which differs only for heights in
    (39, 40] and (24, 25].)
    """
    n = len(anno["name"])
    level = np.full(n, -1, dtype=np.int64)
    height = anno["bbox"][:, 3] - anno["bbox"][:, 1]
    for k in (2, 1, 0):
        ok = (
            (anno["occluded"] <= MAX_OCCLUSION[k])
            & (anno["truncated"] <= MAX_TRUNCATION[k])
            & (height > MIN_HEIGHT[k])
        )
        level[ok] = k
    level[anno["name"] == "DontCare"] = -1
    return level


def wrap_angle(a: np.ndarray) -> np.ndarray:
    """Wrap angles to [−π, π)."""
    return (np.asarray(a) + np.pi) % (2 * np.pi) - np.pi


def camera_to_lidar_boxes(
    location: np.ndarray, dimensions: np.ndarray, rotation_y: np.ndarray, calib: Calibration
) -> np.ndarray:
    """Camera boxes → LiDAR boxes ``(N, 7)`` float64 ``[x, y, z, l, w, h, heading]``.

    Args:
        location: ``(N, 3)`` bottom centres in the rectified camera frame.
        dimensions: ``(N, 3)`` ``l, h, w``.
        rotation_y: ``(N,)`` yaw about camera +y.
    """
    location = np.asarray(location, dtype=np.float64).reshape(-1, 3)
    dimensions = np.asarray(dimensions, dtype=np.float64).reshape(-1, 3)
    l, h, w = dimensions[:, 0], dimensions[:, 1], dimensions[:, 2]
    xyz = calib.rect_to_lidar(location)
    xyz[:, 2] += h / 2
    heading = wrap_angle(-(np.asarray(rotation_y, dtype=np.float64).reshape(-1) + np.pi / 2))
    return np.concatenate([xyz, l[:, None], w[:, None], h[:, None], heading[:, None]], axis=1)


def lidar_to_camera_boxes(boxes: np.ndarray, calib: Calibration) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LiDAR boxes ``(N, 7)`` → ``(location (N, 3), dimensions l,h,w (N, 3), rotation_y (N,))`` in camera."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    xyz = boxes[:, :3].copy()
    l, w, h = boxes[:, 3], boxes[:, 4], boxes[:, 5]
    xyz[:, 2] -= h / 2
    loc = calib.lidar_to_rect(xyz)
    ry = wrap_angle(-boxes[:, 6] - np.pi / 2)
    return loc, np.stack([l, h, w], axis=1), ry


def anno_to_lidar_boxes(anno: dict[str, np.ndarray], calib: Calibration) -> np.ndarray:
    """All objects of ``anno`` as LiDAR boxes ``(N, 7)`` (DontCare rows give meaningless boxes)."""
    return camera_to_lidar_boxes(anno["location"], anno["dimensions"], anno["rotation_y"], calib)


def camera_box_corners(location: np.ndarray, dimensions: np.ndarray, rotation_y: np.ndarray) -> np.ndarray:
    """``(N, 8, 3)`` corners of camera boxes: x ±l/2, y from 0 to −h, z ±w/2, rotated by R_y(ry)."""
    location = np.asarray(location, dtype=np.float64).reshape(-1, 3)
    dims = np.asarray(dimensions, dtype=np.float64).reshape(-1, 3)
    l, h, w = dims[:, 0:1], dims[:, 1:2], dims[:, 2:3]
    sx = np.array([0.5, 0.5, -0.5, -0.5, 0.5, 0.5, -0.5, -0.5])
    sy = np.array([0.0, 0.0, 0.0, 0.0, -1.0, -1.0, -1.0, -1.0])
    sz = np.array([0.5, -0.5, -0.5, 0.5, 0.5, -0.5, -0.5, 0.5])
    x, y, z = l * sx, h * sy, w * sz  # (N, 8)
    ry = np.asarray(rotation_y, dtype=np.float64).reshape(-1, 1)
    c, s = np.cos(ry), np.sin(ry)
    xr = c * x + s * z
    zr = -s * x + c * z
    return np.stack([xr, y, zr], axis=-1) + location[:, None, :]


def project_boxes_to_image(
    location: np.ndarray,
    dimensions: np.ndarray,
    rotation_y: np.ndarray,
    calib: Calibration,
    image_size: tuple[int, int],
) -> np.ndarray:
    """2D boxes ``(N, 4)`` [left, top, right, bottom]: the 8 projected corners' extent clipped to the image.

    ``image_size`` is ``(W, H)``; boxes are clipped to ``[0, W−1] × [0, H−1]`` (OpenPCDet convention).
    """
    corners = camera_box_corners(location, dimensions, rotation_y)
    n = corners.shape[0]
    uv, _ = calib.rect_to_img(corners.reshape(-1, 3))
    uv = uv.reshape(n, 8, 2)
    w, h = image_size
    box = np.concatenate([uv.min(axis=1), uv.max(axis=1)], axis=1)
    box[:, [0, 2]] = np.clip(box[:, [0, 2]], 0, w - 1)
    box[:, [1, 3]] = np.clip(box[:, [1, 3]], 0, h - 1)
    return box


def anno_from_lists(d: dict) -> dict[str, np.ndarray]:
    """Arrays from a JSON/meta anno (lists), e.g. ``batch.meta[i]["annos"]`` → :func:`kitti_eval` input."""
    out = empty_anno()
    if not d or len(d.get("name", [])) == 0:
        return out
    for k, v in out.items():
        out[k] = np.asarray(d[k], dtype=v.dtype).reshape((-1, *v.shape[1:]))
    for k in ("difficulty", "num_points_in_gt", "gt_boxes_lidar"):
        if k in d:
            out[k] = np.asarray(d[k])
    return out
