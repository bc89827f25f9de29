"""Training augmentation for KITTI LiDAR frames (OpenPCDet / PointRCNN recipe, datasets.md B5).

All functions take numpy arrays: ``points (N, 4)`` x, y, z, reflectance in the LiDAR frame and
``boxes (M, 7)`` ``[x, y, z, l, w, h, heading]``, and a ``numpy.random.Generator``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from pc3d.data.kitti.io import read_json

NAME_DTYPE = (
    "<U16"  # class-name arrays (as ``labels.read_label``); "Person_sitting" is the longest KITTI name
)
DEFAULT_SAMPLE_COUNTS = {"Car": 20, "Pedestrian": 15, "Cyclist": 15}
DEFAULT_MIN_POINTS = {"Car": 5, "Pedestrian": 5, "Cyclist": 5}


def _np(x) -> np.ndarray:
    return x.numpy() if hasattr(x, "numpy") else np.asarray(x)


def boxes_iou_bev(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(N, M)`` rotated BEV IoU of LiDAR boxes via ``pc3d.kernels.boxes``."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    from pc3d.kernels.boxes import boxes_iou_bev as _iou

    return _np(_iou(np.ascontiguousarray(a, np.float32), np.ascontiguousarray(b, np.float32)))


def near_boxes(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """``(N,)`` bool: points inside some box's axis-aligned bounding box (a cheap superset of
    :func:`points_in_boxes`, used to hand the exact kernel only the few candidate points)."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 7)
    c, s = np.abs(np.cos(boxes[:, 6])), np.abs(np.sin(boxes[:, 6]))
    hx = 0.5 * (boxes[:, 3] * c + boxes[:, 4] * s) + 1e-3
    hy = 0.5 * (boxes[:, 3] * s + boxes[:, 4] * c) + 1e-3
    hz = 0.5 * boxes[:, 5] + 1e-3
    lo = np.stack([boxes[:, 0] - hx, boxes[:, 1] - hy, boxes[:, 2] - hz], 1).astype(np.float32)
    hi = np.stack([boxes[:, 0] + hx, boxes[:, 1] + hy, boxes[:, 2] + hz], 1).astype(np.float32)
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    out = np.zeros(len(points), dtype=bool)
    for k in range(len(boxes)):
        out |= (
            (x >= lo[k, 0])
            & (x <= hi[k, 0])
            & (y >= lo[k, 1])
            & (y <= hi[k, 1])
            & (z >= lo[k, 2])
            & (z <= hi[k, 2])
        )
    return out


def points_in_boxes(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """``(N,)`` int64 index of a LiDAR box containing each point, −1 outside all (``pc3d.kernels.boxes``)."""
    out = np.full(len(points), -1, dtype=np.int64)
    if len(boxes) == 0 or len(points) == 0:
        return out
    from pc3d.kernels.boxes import points_in_boxes as _pib

    cand = np.flatnonzero(near_boxes(points, boxes))
    if len(cand):
        pts = np.ascontiguousarray(points[cand, :3], np.float32)
        out[cand] = _np(_pib(pts, np.ascontiguousarray(boxes, np.float32))).astype(np.int64)
    return out


def points_in_boxes_mask(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """``(N, M)`` bool: point ``n`` inside LiDAR box ``m`` (``pc3d.kernels.boxes``)."""
    out = np.zeros((len(points), len(boxes)), dtype=bool)
    if len(boxes) == 0 or len(points) == 0:
        return out
    from pc3d.kernels.boxes import points_in_boxes_mask as _pib

    cand = np.flatnonzero(near_boxes(points, boxes))
    if len(cand):
        pts = np.ascontiguousarray(points[cand, :3], np.float32)
        out[cand] = _np(_pib(pts, np.ascontiguousarray(boxes, np.float32))).astype(bool)
    return out


class GTSampler:
    """Paste ground-truth objects from the GT database into a scene ("GT-sampling").

    For every class the number added is ``sample_counts[c]`` minus the objects of that class already
    in the scene. Candidates come from ``<root>/gt_database`` (train split), filtered by
    ``min_points`` and difficulty ≠ −1; a candidate is rejected when its BEV IoU with any existing
    box or with another candidate is > 0. Scene points inside accepted boxes are removed.

    Args:
        root: preprocessed KITTI directory (output of ``pc3d-data kitti``).
        classes: classes to sample.
        sample_counts: target object count per class (OpenPCDet: Car 20, Pedestrian 15, Cyclist 15).
        min_points: minimum database points per object (OpenPCDet 5/5/5).
        skip_difficulty: database difficulties not sampled (−1: no KITTI difficulty).
    """

    def __init__(
        self,
        root: str | Path,
        classes: Sequence[str] = ("Car", "Pedestrian", "Cyclist"),
        sample_counts: Mapping[str, int] | None = None,
        min_points: Mapping[str, int] | None = None,
        skip_difficulty: Sequence[int] = (-1,),
    ) -> None:
        self.root = Path(root)
        self.classes = list(classes)
        self.sample_counts = dict(DEFAULT_SAMPLE_COUNTS if sample_counts is None else sample_counts)
        self.min_points = dict(DEFAULT_MIN_POINTS if min_points is None else min_points)
        path = self.root / "gt_database" / "dbinfos_train.json"
        if not path.exists():
            raise ValueError(f"{path}: GT database missing; run `pc3d-data kitti` on the dataset first")
        db = read_json(path)["classes"]
        self.boxes: dict[str, np.ndarray] = {}
        self.spans: dict[str, np.ndarray] = {}
        self._points: dict[str, np.ndarray | None] = {}
        for c in self.classes:
            entries = [
                e
                for e in db.get(c, [])
                if e["count"] >= self.min_points.get(c, 0) and e["difficulty"] not in skip_difficulty
            ]
            self.boxes[c] = np.asarray([e["box3d_lidar"] for e in entries], np.float64).reshape(-1, 7)
            self.spans[c] = np.asarray([(e["offset"], e["count"]) for e in entries], np.int64).reshape(-1, 2)
            self._points[c] = None

    def pool_size(self, cls: str) -> int:
        return len(self.boxes[cls])

    def _class_points(self, c: str) -> np.ndarray:
        if self._points[c] is None:  # memory-mapped lazily, per process
            self._points[c] = np.load(
                self.root / "gt_database" / f"{c}.npy", mmap_mode="r", allow_pickle=False
            )
        return self._points[c]

    def __call__(
        self, points: np.ndarray, boxes: np.ndarray, names: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Returns ``(points (N', 4), boxes (M', 7), names (M',))`` with the sampled objects appended."""
        names = _as_names(names)
        existing = np.asarray(boxes, np.float64).reshape(-1, 7)
        new_boxes, new_names, new_pts = [], [], []
        for c in self.classes:
            n_want = self.sample_counts.get(c, 0) - int((names == c).sum())
            pool = len(self.boxes[c])
            if n_want <= 0 or pool == 0:
                continue
            idx = rng.choice(pool, size=min(n_want, pool), replace=False)
            cand = self.boxes[c][idx]
            iou_ex = boxes_iou_bev(cand, existing)
            iou_self = boxes_iou_bev(cand, cand)
            np.fill_diagonal(iou_self, 0)
            ok = (iou_ex.max(1, initial=0) + iou_self.max(1, initial=0)) == 0
            if not ok.any():
                continue
            acc = cand[ok]
            existing = np.concatenate([existing, acc])
            pts_c = self._class_points(c)
            for box, (off, cnt) in zip(acc, self.spans[c][idx[ok]]):
                p = np.array(pts_c[off : off + cnt], dtype=np.float32)
                p[:, :3] += box[:3].astype(np.float32)
                new_pts.append(p)
            new_boxes.append(acc)
            new_names += [c] * len(acc)
        if not new_boxes:
            return points, boxes, names
        added = np.concatenate(new_boxes)
        inside = points_in_boxes(points, added) >= 0
        points = np.concatenate([points[~inside], *new_pts])
        boxes = np.concatenate([np.asarray(boxes, np.float64).reshape(-1, 7), added])
        added_names = np.asarray(new_names, dtype=str)
        dtype = np.promote_types(np.promote_types(names.dtype, added_names.dtype), NAME_DTYPE)
        names = np.concatenate([names.astype(dtype), added_names.astype(dtype)])
        return points, boxes, names


def _as_names(names: np.ndarray) -> np.ndarray:
    """``names`` as a unicode array (an empty list/array of any dtype becomes ``(0,)`` of ``NAME_DTYPE``)."""
    names = np.asarray(names)
    if names.dtype.kind == "U":
        return names
    if names.size == 0:
        return np.zeros(0, dtype=NAME_DTYPE)
    raise ValueError(f"names: expected an array of class-name strings, got dtype {names.dtype}")


def random_flip_x(points: np.ndarray, boxes: np.ndarray, rng: np.random.Generator, p: float = 0.5):
    """Mirror across the x axis (y → −y, heading → −heading) with probability ``p``."""
    if rng.random() < p:
        points = points.copy()
        boxes = boxes.copy()
        points[:, 1] = -points[:, 1]
        boxes[:, 1] = -boxes[:, 1]
        boxes[:, 6] = -boxes[:, 6]
    return points, boxes


def global_rotation(points: np.ndarray, boxes: np.ndarray, angle: float):
    """Rotate the scene by ``angle`` about +z."""
    c, s = np.cos(angle), np.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    points = points.copy()
    boxes = boxes.copy()
    points[:, :2] = (points[:, :2].astype(np.float64) @ rot.T).astype(points.dtype)
    boxes[:, :2] = boxes[:, :2] @ rot.T
    boxes[:, 6] = (boxes[:, 6] + angle + np.pi) % (2 * np.pi) - np.pi
    return points, boxes


def global_scaling(points: np.ndarray, boxes: np.ndarray, scale: float):
    """Scale coordinates and box sizes by ``scale``."""
    points = points.copy()
    boxes = boxes.copy()
    points[:, :3] *= scale
    boxes[:, :6] *= scale
    return points, boxes


def range_masks(points: np.ndarray, boxes: np.ndarray, point_range: Sequence[float]):
    """``(points_mask (N,), boxes_mask (M,))``: points inside ``[x0, y0, z0, x1, y1, z1]`` and boxes whose
    centre's x, y are inside it (OpenPCDet keeps boxes by BEV position)."""
    r = np.asarray(point_range, dtype=np.float64)
    pm = ((points[:, :3] >= r[:3]) & (points[:, :3] <= r[3:])).all(1)
    bm = ((boxes[:, :2] >= r[:2]) & (boxes[:, :2] <= r[3:5])).all(1)
    return pm, bm


def sample_points(
    points: np.ndarray, num_points: int, rng: np.random.Generator, far: float = 40.0
) -> np.ndarray:
    """Indices ``(num_points,)`` to get exactly ``num_points`` points (PointRCNN / OpenPCDet recipe).

    With more points than needed all points beyond ``far`` metres are kept and the near ones are
    subsampled without replacement; with fewer, every point is kept and extra indices are drawn
    (without replacement while possible). ``num_points <= 0`` keeps all points.
    """
    n = len(points)
    if num_points <= 0 or n == 0:
        return np.arange(n)
    if n >= num_points:
        depth = np.linalg.norm(points[:, :3], axis=1)
        far_idx = np.flatnonzero(depth >= far)
        near_idx = np.flatnonzero(depth < far)
        if len(far_idx) < num_points:
            near = rng.choice(near_idx, num_points - len(far_idx), replace=False)
            return np.sort(np.concatenate([near, far_idx]))
        return np.sort(rng.choice(n, num_points, replace=False))
    extra = rng.choice(n, num_points - n, replace=num_points - n > n)
    return np.concatenate([np.arange(n), extra])
