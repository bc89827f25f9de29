"""ScanNet v2 class sets: 20-class benchmark, ScanNet200 and the 18 VoteNet detection classes.

Label conventions (Pointcept ``preprocess_scannet.py`` and mmdetection3d ``load_scannet_data.py``):

- ``segment20``: the aggregation label (a raw category) is joined with the label tsv on
  ``raw_category``; its ``nyu40id`` is looked up in :data:`VALID_CLASS_IDS_20` and the position
  (0..19) is the label; anything else, including unknown raw categories, is ``-1``.
- ``segment200``: the tsv ``id`` is looked up in :data:`VALID_CLASS_IDS_200` (0..199), else ``-1``.
- detection: nyu40 ids :data:`DET_NYU40_IDS`, class index = position (0..17), which equals
  ``segment20 - 2`` (the 20 classes minus wall and floor, in the same order).
"""

from __future__ import annotations

import numpy as np

IGNORE_INDEX = -1

SCANNET20_CLASSES: tuple[str, ...] = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf",
    "picture", "counter", "desk", "curtain", "refrigerator", "shower curtain", "toilet", "sink",
    "bathtub", "otherfurniture",
)  # fmt: skip
VALID_CLASS_IDS_20: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39)

# ScanNet200 (Rozenberszki et al. 2022): tsv ``id`` of each of the 200 classes, label = position.
VALID_CLASS_IDS_200: tuple[int, ...] = (
    1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 21, 22, 23, 24, 26, 27, 28, 29, 31,
    32, 33, 34, 35, 36, 38, 39, 40, 41, 42, 44, 45, 46, 47, 48, 49, 50, 51, 52, 54, 55, 56, 57, 58, 59,
    62, 63, 64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 79, 80, 82, 84, 86, 87, 88, 89,
    90, 93, 95, 96, 97, 98, 99, 100, 101, 102, 103, 104, 105, 106, 107, 110, 112, 115, 116, 118, 120,
    121, 122, 125, 128, 130, 131, 132, 134, 136, 138, 139, 140, 141, 145, 148, 154, 155, 156, 157, 159,
    161, 163, 165, 166, 168, 169, 170, 177, 180, 185, 188, 191, 193, 195, 202, 208, 213, 214, 221, 229,
    230, 232, 233, 242, 250, 261, 264, 276, 283, 286, 300, 304, 312, 323, 325, 331, 342, 356, 370, 392,
    395, 399, 408, 417, 488, 540, 562, 570, 572, 581, 609, 748, 776, 1156, 1163, 1164, 1165, 1166, 1167,
    1168, 1169, 1170, 1171, 1172, 1173, 1174, 1175, 1176, 1178, 1179, 1180, 1181, 1182, 1183, 1184, 1185,
    1186, 1187, 1188, 1189, 1190, 1191,
)  # fmt: skip

# VoteNet / mmdetection3d 18 detection classes (nyu40 39 is called "garbagebin" there).
SCANNET_DET_CLASSES: tuple[str, ...] = (
    "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf", "picture", "counter",
    "desk", "curtain", "refrigerator", "showercurtain", "toilet", "sink", "bathtub", "garbagebin",
)  # fmt: skip
DET_NYU40_IDS: tuple[int, ...] = (3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39)

# Per-class mean box sizes (dx, dy, dz) in metres over the ScanNet train split, as shipped with
# mmdetection3d's VoteNet config (``scannet_means.npz``); one size cluster per class.
SCANNET_DET_MEAN_SIZES: tuple[tuple[float, float, float], ...] = (
    (0.76966727, 0.8116021, 0.92573744),
    (1.876858, 1.8425595, 1.1931566),
    (0.61328, 0.6148609, 0.7182701),
    (1.3955007, 1.5121545, 0.83443564),
    (0.97949594, 1.0675149, 0.6329687),
    (0.531663, 0.5955577, 1.7500148),
    (0.9624706, 0.72462326, 1.1481868),
    (0.83221924, 1.0490936, 1.6875663),
    (0.21132214, 0.4206159, 0.5372846),
    (1.4440073, 1.8970833, 0.26985747),
    (1.0294262, 1.4040797, 0.87554324),
    (1.3766412, 0.65521795, 1.6813129),
    (0.6650819, 0.71111923, 1.298853),
    (0.41999173, 0.37906948, 1.7513971),
    (0.59359556, 0.5912492, 0.73919016),
    (0.50867593, 0.50656086, 0.30136237),
    (1.1511526, 1.0546296, 0.49706793),
    (0.47535285, 0.49249494, 0.5802117),
)


def _lookup(valid_ids: tuple[int, ...], size: int) -> np.ndarray:
    lut = np.full(size, IGNORE_INDEX, dtype=np.int16)
    lut[np.asarray(valid_ids)] = np.arange(len(valid_ids), dtype=np.int16)
    return lut


def nyu40_to_segment20(nyu40: np.ndarray) -> np.ndarray:
    """Map nyu40 ids ``(N,)`` (0 = unknown) to 20-class labels ``(N,)`` int16, ``-1`` = ignore."""
    nyu40 = np.asarray(nyu40, dtype=np.int64)
    lut = _lookup(VALID_CLASS_IDS_20, 41)
    out = np.full(nyu40.shape, IGNORE_INDEX, dtype=np.int16)
    ok = (nyu40 >= 0) & (nyu40 <= 40)
    out[ok] = lut[nyu40[ok]]
    return out


def tsv_id_to_segment200(ids: np.ndarray) -> np.ndarray:
    """Map label-tsv ``id`` values ``(N,)`` (0 = unknown) to ScanNet200 labels ``(N,)`` int16."""
    ids = np.asarray(ids, dtype=np.int64)
    lut = _lookup(VALID_CLASS_IDS_200, max(VALID_CLASS_IDS_200) + 1)
    out = np.full(ids.shape, IGNORE_INDEX, dtype=np.int16)
    ok = (ids >= 0) & (ids < lut.shape[0])
    out[ok] = lut[ids[ok]]
    return out


def nyu40_to_det_class(nyu40: np.ndarray) -> np.ndarray:
    """Map nyu40 ids to the 18 detection classes ``(N,)`` int64, ``-1`` when not a detection class."""
    seg20 = nyu40_to_segment20(nyu40).astype(np.int64)
    return segment20_to_det_class(seg20)


def segment20_to_det_class(segment20: np.ndarray) -> np.ndarray:
    """20-class labels to detection classes: ``segment20 - 2`` for labels >= 2 (not wall/floor), else -1."""
    seg = np.asarray(segment20, dtype=np.int64)
    return np.where(seg >= 2, seg - 2, IGNORE_INDEX)
