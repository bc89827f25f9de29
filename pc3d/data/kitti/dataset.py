"""KITTI LiDAR dataset over preprocessed frames (see :mod:`pc3d.data.kitti.preprocess`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from pc3d.data.kitti import augment as aug
from pc3d.data.kitti.preprocess import load_frame, load_infos
from pc3d.data.kitti.targets import point_targets

DEFAULT_POINT_RANGE = (0.0, -40.0, -3.0, 70.4, 40.0, 1.0)


def frame_points(
    points: np.ndarray,
    point_range: Sequence[float],
    num_points: int,
    rng: np.random.Generator,
    shuffle: bool = False,
) -> np.ndarray:
    """The model input of one (FOV-reduced) frame: the points ``(N, 4)`` inside ``point_range``,
    sampled to ``num_points`` (:func:`~pc3d.data.kitti.augment.sample_points`), shuffled on request.
    Returns ``(num_points, 4)`` (all points in range when ``num_points <= 0``)."""
    pm, _ = aug.range_masks(points, np.zeros((0, 7)), point_range)
    points = points[pm]
    idx = aug.sample_points(points, num_points, rng)
    if shuffle:
        idx = rng.permutation(idx)
    return points[idx]


class KittiDataset(Dataset):
    """One preprocessed KITTI split. Items are dicts for :meth:`PointBatch.collate`.

    Item layout: ``coord (n, 3)``, ``feat (n, 1)`` reflectance, ``boxes (m, 7)`` LiDAR
    ``[x, y, z, l, w, h, heading]`` of ``classes`` only, ``box_labels (m,)`` class indices,
    ``point = {"box_index" (n,) int64}`` (index within this cloud's boxes, −1 for background; the
    batch holds it as an index into ``batch.boxes``),
    ``meta = {"frame_id", "split", "image_size", "calib" (all matrices as lists), "annos" (camera-frame
    label columns incl. DontCare, for evaluation; ``None`` on the test split)}``.

    Args:
        root: preprocessed directory.
        split: ``train``, ``val``, ``trainval`` or ``test``.
        classes: class names, index = label.
        training: enable augmentation (GT-sampling, flip, rotation, scaling, shuffle).
        num_points: fixed point count after sampling (``<= 0`` keeps all).
        point_range: ``[x0, y0, z0, x1, y1, z1]`` point/box filter.
        gt_sampling: paste database objects (training only).
        sample_counts, min_points: see :class:`~pc3d.data.kitti.augment.GTSampler`.
        flip_prob: probability of the x-axis flip.
        rotation: uniform global rotation range (radians).
        scaling: uniform global scale range.
        shuffle_points: shuffle point order (training only).
        seed: base seed. Training items draw a fresh seed from torch's RNG (different every epoch and
            DataLoader worker, reproducible under ``lightning.seed_everything(..., workers=True)``);
            evaluation items use ``(seed, index)``.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        classes: Sequence[str] = ("Car", "Pedestrian", "Cyclist"),
        training: bool = False,
        num_points: int = 16384,
        point_range: Sequence[float] = DEFAULT_POINT_RANGE,
        gt_sampling: bool = True,
        sample_counts: Mapping[str, int] | None = None,
        min_points: Mapping[str, int] | None = None,
        flip_prob: float = 0.5,
        rotation: Sequence[float] = (-np.pi / 4, np.pi / 4),
        scaling: Sequence[float] = (0.95, 1.05),
        shuffle_points: bool = True,
        seed: int = 0,
    ) -> None:
        if len(point_range) != 6:
            raise ValueError(
                f"point_range: expected 6 values [x0, y0, z0, x1, y1, z1], got {list(point_range)}"
            )
        self.root = Path(root)
        self.split = split
        self.classes = list(classes)
        self.training = training
        self.num_points = int(num_points)
        self.point_range = tuple(float(v) for v in point_range)
        self.infos = load_infos(self.root, split)
        self.flip_prob = float(flip_prob)
        self.rotation = tuple(rotation)
        self.scaling = tuple(scaling)
        self.shuffle_points = shuffle_points
        self.seed = int(seed)
        self.sampler = (
            aug.GTSampler(self.root, self.classes, sample_counts, min_points)
            if training and gt_sampling
            else None
        )

    def __len__(self) -> int:
        return len(self.infos)

    def __getitem__(self, i: int) -> dict[str, Any]:
        info = self.infos[i]
        if self.training:
            rng = np.random.default_rng([self.seed, int(torch.randint(0, 2**62, (1,))), i])
        else:
            rng = np.random.default_rng([self.seed, i])
        d = load_frame(self.root, info)
        points = d["points"]
        boxes = d.get("gt_boxes", np.zeros((0, 7)))
        names = d.get("gt_names", np.zeros(0, dtype="<U16"))
        if self.training:
            if self.sampler is not None:
                points, boxes, names = self.sampler(points, boxes, names, rng)
            points, boxes = aug.random_flip_x(points, boxes, rng, self.flip_prob)
            points, boxes = aug.global_rotation(points, boxes, rng.uniform(*self.rotation))
            points, boxes = aug.global_scaling(points, boxes, rng.uniform(*self.scaling))
        keep = np.isin(names, self.classes)
        boxes, names = boxes[keep], names[keep]
        _, bm = aug.range_masks(points[:0], boxes, self.point_range)
        boxes, names = boxes[bm], names[bm]
        points = frame_points(
            points, self.point_range, self.num_points, rng, shuffle=self.training and self.shuffle_points
        )
        box_index = point_targets(points, boxes)
        labels = np.asarray([self.classes.index(n) for n in names], dtype=np.int64)
        calib = info["calib"]
        return {
            "coord": points[:, :3].astype(np.float32),
            "feat": points[:, 3:4].astype(np.float32),
            "boxes": boxes.astype(np.float32),
            "box_labels": labels,
            "point": {"box_index": box_index},
            "meta": {
                "frame_id": info["frame_id"],
                "split": self.split,
                "image_size": tuple(info["image_size"]),
                "calib": calib,
                "annos": info.get("annos"),
            },
        }
