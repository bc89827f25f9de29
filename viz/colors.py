"""Colour palettes for class labels, prediction errors and point heights.

Colours are ``uint8`` RGB triples. Class colours are looked up by class *name*, so the same class
gets the same colour whatever list it appears in (ScanNet's 20 segmentation classes, its 18
detection classes, KITTI's object types). Names not in the tables get a deterministic colour
from a well-spread hue sequence.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import numpy as np

#: ScanNet v2 benchmark colours of the 20 segmentation classes (also used for the detection classes).
SCANNET_COLORS: dict[str, tuple[int, int, int]] = {
    "wall": (174, 199, 232),
    "floor": (152, 223, 138),
    "cabinet": (31, 119, 180),
    "bed": (255, 187, 120),
    "chair": (188, 189, 34),
    "sofa": (140, 86, 75),
    "table": (255, 152, 150),
    "door": (214, 39, 40),
    "window": (197, 176, 213),
    "bookshelf": (148, 103, 189),
    "picture": (196, 156, 148),
    "counter": (23, 190, 207),
    "desk": (247, 182, 210),
    "curtain": (219, 219, 141),
    "refrigerator": (255, 127, 14),
    "shower curtain": (158, 218, 229),
    "showercurtain": (158, 218, 229),
    "toilet": (44, 160, 44),
    "sink": (112, 128, 144),
    "bathtub": (227, 119, 194),
    "otherfurniture": (82, 84, 163),
    "garbagebin": (82, 84, 163),
}

#: KITTI object types.
KITTI_COLORS: dict[str, tuple[int, int, int]] = {
    "Car": (30, 120, 255),
    "Pedestrian": (230, 25, 75),
    "Cyclist": (255, 150, 0),
    "Van": (0, 170, 170),
    "Truck": (145, 30, 180),
    "Person_sitting": (240, 50, 230),
    "Tram": (128, 80, 0),
    "Misc": (128, 128, 0),
}

#: Points without a label (ignore index -1, or outside every box).
UNLABELLED_COLOR = (150, 150, 150)
#: Error colouring.
CORRECT_COLOR = (140, 200, 140)
WRONG_COLOR = (230, 30, 30)
IGNORE_COLOR = (215, 215, 215)
#: Box line colours when boxes are coloured by source (ground truth vs prediction).
GT_BOX_COLOR = (0, 200, 0)
PRED_BOX_COLOR = (255, 0, 255)
#: Render background.
BACKGROUND = (255, 255, 255)

_NAMED = {**SCANNET_COLORS, **KITTI_COLORS}


def _hue_color(i: int) -> tuple[int, int, int]:
    """Deterministic, well-spread colour number ``i`` (golden-ratio hue steps)."""
    h = (0.13 + 0.618033988749895 * i) % 1.0
    s = 0.75 if i % 2 == 0 else 0.55
    v = 0.85 if (i // 2) % 2 == 0 else 0.65
    r, g, b = colorsys.hsv_to_rgb(h, s, v)
    return int(round(r * 255)), int(round(g * 255)), int(round(b * 255))


def class_color(name: str, index: int = 0) -> tuple[int, int, int]:
    """Colour of class ``name``; unknown names use the hue sequence at ``index``."""
    if name in _NAMED:
        return _NAMED[name]
    return _hue_color(index)


def palette(class_names: Sequence[str]) -> np.ndarray:
    """``(C, 3)`` uint8 colours for a class list, index-aligned with ``class_names``."""
    return np.array([class_color(str(n), i) for i, n in enumerate(class_names)], dtype=np.uint8).reshape(
        -1, 3
    )


def label_colors(labels: np.ndarray, class_names: Sequence[str]) -> np.ndarray:
    """Per-point colours ``(N, 3)`` uint8 for labels ``(N,)``; -1 and out-of-range labels are grey.

    Raises:
        ValueError: if a label is >= ``len(class_names)`` (the labels and class list disagree).
    """
    labels = np.asarray(labels).astype(np.int64, copy=False)
    pal = palette(class_names)
    if labels.size and labels.max() >= len(pal):
        raise ValueError(
            f"label {int(labels.max())} has no class name: only {len(pal)} class names were given "
            f"({list(class_names)[:5]}...)"
        )
    out = np.empty((labels.shape[0], 3), dtype=np.uint8)
    out[:] = UNLABELLED_COLOR
    valid = labels >= 0
    out[valid] = pal[labels[valid]]
    return out


def error_colors(gt: np.ndarray, pred: np.ndarray, ignore_unlabelled: bool = True) -> np.ndarray:
    """``(N, 3)`` uint8: correct / wrong / ignored per point.

    With ``ignore_unlabelled`` points with ``gt == -1`` are ignored (segmentation); without it -1 is
    an ordinary "background" label (labels derived from boxes: a point in a missed box is wrong).
    """
    gt = np.asarray(gt)
    pred = np.asarray(pred)
    if gt.shape != pred.shape:
        raise ValueError(f"error colouring needs gt and pred of one shape, got {gt.shape} and {pred.shape}")
    out = np.empty((gt.shape[0], 3), dtype=np.uint8)
    out[:] = WRONG_COLOR
    out[gt == pred] = CORRECT_COLOR
    if ignore_unlabelled:
        out[gt < 0] = IGNORE_COLOR
    return out


_HEIGHT_STOPS = np.array(
    [(48, 18, 59), (40, 120, 230), (30, 200, 160), (160, 220, 50), (250, 170, 30), (180, 30, 10)],
    dtype=np.float64,
)


def height_colors(z: np.ndarray) -> np.ndarray:
    """``(N, 3)`` uint8 colour ramp over heights ``(N,)`` (2nd to 98th percentile), for clouds without RGB."""
    z = np.asarray(z, dtype=np.float64)
    if z.size == 0:
        return np.zeros((0, 3), dtype=np.uint8)
    lo, hi = np.percentile(z, [2, 98])
    t = np.clip((z - lo) / max(hi - lo, 1e-6), 0.0, 1.0) * (len(_HEIGHT_STOPS) - 1)
    i = np.minimum(t.astype(np.int64), len(_HEIGHT_STOPS) - 2)
    f = (t - i)[:, None]
    rgb = _HEIGHT_STOPS[i] * (1 - f) + _HEIGHT_STOPS[i + 1] * f
    return np.round(rgb).astype(np.uint8)
