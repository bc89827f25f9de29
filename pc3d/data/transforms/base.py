"""Transform protocol for point-cloud samples: ``dict[str, np.ndarray]`` in, same dict out.

A sample dict holds per-point arrays ``(N, ...)`` (``coord (N,3) float32`` always; ``color (N,3)``
float32 in [0, 255] until :class:`NormalizeColor`; ``normal``, ``segment``, ``instance``,
``grid_coord``, ``height``, ...) and per-scene entries that are *not* indexed with the points:
every key starting with ``box`` (``boxes (K,7)``, ``box_labels (K,)``, ...), keys starting with
``_`` and the keys in :data:`SCENE_KEYS`. Transforms draw randomness only from the
``np.random.Generator`` they are given, so a sample is a pure function of its seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numba
import numpy as np

Sample = dict[str, Any]
SCENE_KEYS = frozenset({"axis_align", "scene_id", "name", "num_points", "inverse"})


class Transform(Protocol):
    def __call__(self, data: Sample, rng: np.random.Generator) -> Sample: ...


def is_point_key(key: str, value: Any, n: int) -> bool:
    """Whether ``data[key]`` is a per-point array to be indexed together with ``coord``."""
    if key.startswith(("box", "_")) or key in SCENE_KEYS:
        return False
    return isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == n


def index_points(data: Sample, idx: np.ndarray) -> Sample:
    """Keep the points ``idx`` (int indices or bool mask) in every per-point array; in place, returns ``data``."""
    n = data["coord"].shape[0]
    for key in list(data):
        if is_point_key(key, data[key], n):
            data[key] = data[key][idx]
    return data


class Compose:
    """Apply ``transforms`` in order with the same generator."""

    def __init__(self, transforms: Sequence[Transform]):
        self.transforms = list(transforms)

    def __call__(self, data: Sample, rng: np.random.Generator) -> Sample:
        for t in self.transforms:
            data = t(data, rng)
        return data

    def __repr__(self) -> str:
        inner = ",\n  ".join(repr(t) for t in self.transforms)
        return f"Compose([\n  {inner}\n])"


def check_prob(name: str, p: float) -> float:
    if not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"{name}: probability must be in [0, 1], got {p}")
    return float(p)


def check_range(name: str, r: Sequence[float]) -> tuple[float, float]:
    if len(r) != 2 or float(r[0]) > float(r[1]):
        raise ValueError(f"{name}: expected a range [low, high] with low <= high, got {r}")
    return float(r[0]), float(r[1])


@numba.njit(cache=True)
def _bounds(a):
    lo = a[0].copy()
    hi = a[0].copy()
    for i in range(1, a.shape[0]):
        for k in range(a.shape[1]):
            v = a[i, k]
            if v < lo[k]:
                lo[k] = v
            if v > hi[k]:
                hi[k] = v
    return lo, hi


def bounds(coord: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column ``(min, max)`` of ``coord (N, D)`` (N >= 1); much faster than ``min(0)``/``max(0)`` for small D."""
    if coord.ndim != 2 or coord.shape[0] == 0:
        raise ValueError(f"coord: expected a non-empty (N, D) array, got shape {coord.shape}")
    return _bounds(np.ascontiguousarray(coord))


@numba.njit(cache=True)
def _affine(p, r, pre, post, out):
    for i in range(p.shape[0]):
        x, y, z = p[i, 0] - pre[0], p[i, 1] - pre[1], p[i, 2] - pre[2]
        out[i, 0] = r[0, 0] * x + r[0, 1] * y + r[0, 2] * z + post[0]
        out[i, 1] = r[1, 0] * x + r[1, 1] * y + r[1, 2] * z + post[1]
        out[i, 2] = r[2, 0] * x + r[2, 1] * y + r[2, 2] * z + post[2]


def affine(points: np.ndarray, r: np.ndarray, pre: np.ndarray | None = None, post: np.ndarray | None = None):
    """``(points - pre) @ r.T + post`` for ``points (N, 3)`` (same dtype; float64 arithmetic), without BLAS.

    (numpy's BLAS ``gemm`` path for an ``(N, 3) @ (3, 3)`` product can stall for tens of ms when its
    threads compete for busy cores; this loop costs ~0.2 ms per 80k points on one core.)
    """
    p = np.ascontiguousarray(points)
    zero = np.zeros(3)
    a = zero if pre is None else np.asarray(pre, np.float64).reshape(3)
    b = zero if post is None else np.asarray(post, np.float64).reshape(3)
    out = np.empty_like(p)
    _affine(p, np.ascontiguousarray(r, dtype=np.float64), a, b, out)
    return out


def rotate_about(points: np.ndarray, r: np.ndarray, center: np.ndarray | None = None) -> np.ndarray:
    """``(points - center) @ r.T + center`` for ``points (N, 3)``, same dtype."""
    return affine(points, r, center, center)
