"""Geometric augmentations (Pointcept ``datasets/transform.py`` semantics, mmdet3d for boxes).

Boxes ``boxes (K, 7)`` ``[x, y, z, dx, dy, dz, yaw]`` follow the points when present. With
``axis_aligned_boxes=True`` (ScanNet, mmdetection3d ``with_yaw=False``) a z-rotation replaces each
box by the axis-aligned box enclosing its rotated corners and yaw stays 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from pc3d.data.transforms._elastic import blur_noise, trilinear_add
from pc3d.data.transforms.base import Sample, bounds, check_prob, check_range, rotate_about


class CenterShift:
    """Shift ``coord`` so its bounding-box centre is at the origin in x/y; z: min to 0 (``apply_z``)."""

    def __init__(self, apply_z: bool = True):
        self.apply_z = apply_z

    def __call__(self, data: Sample, rng: np.random.Generator) -> Sample:
        c = data["coord"]
        lo, hi = bounds(c)
        shift = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, lo[2] if self.apply_z else 0.0], c.dtype)
        data["coord"] = c - shift
        if "boxes" in data and len(data["boxes"]):
            data["boxes"] = data["boxes"].copy()
            data["boxes"][:, :3] -= shift
        return data

    def __repr__(self) -> str:
        return f"CenterShift(apply_z={self.apply_z})"


def rotation_matrix(axis: str, angle: float) -> np.ndarray:
    """``(3, 3)`` rotation by ``angle`` radians about ``axis`` (right-handed); apply as ``p @ R.T``."""
    c, s = math.cos(angle), math.sin(angle)
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=np.float64)
    if axis == "y":
        return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=np.float64)
    if axis == "z":
        return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=np.float64)
    raise ValueError(f"axis: expected 'x', 'y' or 'z', got {axis!r}")


def rotate_boxes_z(boxes: np.ndarray, angle: float, center: np.ndarray, axis_aligned: bool) -> np.ndarray:
    """Rotate boxes ``(K, 7)`` by ``angle`` about +z through ``center (3,)``."""
    b = boxes.astype(np.float64, copy=True)
    r = rotation_matrix("z", angle)
    b[:, :3] = (b[:, :3] - center) @ r.T + center
    if axis_aligned:
        c, s = abs(math.cos(angle)), abs(math.sin(angle))
        dx, dy = b[:, 3].copy(), b[:, 4].copy()
        b[:, 3] = dx * c + dy * s
        b[:, 4] = dx * s + dy * c
    else:
        b[:, 6] = b[:, 6] + angle
    return b.astype(boxes.dtype)


class RandomRotate:
    """With probability ``p`` rotate about ``axis`` by ``U(angle) * pi`` (``angle`` in units of pi, Pointcept).

    ``center=None`` rotates about the bounding-box centre of ``coord``. Rotates ``normal`` too.
    Boxes are only supported for ``axis="z"``.
    """

    def __init__(
        self,
        angle: Sequence[float] = (-1.0, 1.0),
        axis: str = "z",
        center: Sequence[float] | None = None,
        p: float = 0.5,
        axis_aligned_boxes: bool = True,
    ):
        self.angle = check_range("RandomRotate.angle", angle)
        rotation_matrix(axis, 0.0)
        self.axis = axis
        self.center = None if center is None else np.asarray(center, dtype=np.float64).reshape(3)
        self.p = check_prob("RandomRotate.p", p)
        self.axis_aligned_boxes = axis_aligned_boxes

    def __call__(self, data: Sample, rng: np.random.Generator) -> Sample:
        if rng.random() >= self.p:
            return data
        angle = rng.uniform(*self.angle) * math.pi
        c = data["coord"]
        center = np.add(*bounds(c)) / 2.0 if self.center is None else self.center
        r = rotation_matrix(self.axis, angle)
        data["coord"] = rotate_about(c, r, center)
        if "normal" in data:
            data["normal"] = rotate_about(data["normal"], r)
        if "boxes" in data and len(data["boxes"]):
            if self.axis != "z":
                raise ValueError(f"RandomRotate(axis={self.axis!r}): boxes can only be rotated about z")
            data["boxes"] = rotate_boxes_z(data["boxes"], angle, np.asarray(center), self.axis_aligned_boxes)
        return data

    def __repr__(self) -> str:
        return f"RandomRotate(angle={self.angle}, axis={self.axis!r}, p={self.p})"


class RandomScale:
    """Multiply ``coord`` (and ``height``, box centres/sizes) by ``U(scale)`` (per axis if ``anisotropic``)."""

    def __init__(self, scale: Sequence[float] = (0.95, 1.05), anisotropic: bool = False):
        self.scale = check_range("RandomScale.scale", scale)
        self.anisotropic = anisotropic

    def __call__(self, data: Sample, rng: np.random.Generator) -> Sample:
        s = rng.uniform(*self.scale, size=3 if self.anisotropic else 1)
        data["coord"] = (data["coord"] * s).astype(np.float32)
        if "height" in data:
            data["height"] = (data["height"] * s[-1]).astype(np.float32)
        if "boxes" in data and len(data["boxes"]):
            b = data["boxes"].copy()
            b[:, :3] *= s
            b[:, 3:6] *= s
            data["boxes"] = b
        return data

    def __repr__(self) -> str:
        return f"RandomScale(scale={self.scale}, anisotropic={self.anisotropic})"


class RandomFlip:
    """Negate x with probability ``p``, then independently y with probability ``p`` (normals and boxes too).

    Box yaw becomes ``pi - yaw`` (x flip) / ``-yaw`` (y flip), unless ``axis_aligned_boxes`` (yaw stays 0).
    """

    def __init__(self, p: float = 0.5, axis_aligned_boxes: bool = True):
        self.p = check_prob("RandomFlip.p", p)
        self.axis_aligned_boxes = axis_aligned_boxes

    def __call__(self, data: Sample, rng: np.random.Generator) -> Sample:
        for axis in (0, 1):
            if rng.random() < self.p:
                data["coord"] = data["coord"].copy()
                data["coord"][:, axis] *= -1
                if "normal" in data:
                    data["normal"] = data["normal"].copy()
                    data["normal"][:, axis] *= -1
                if "boxes" in data and len(data["boxes"]):
                    b = data["boxes"].copy()
                    b[:, axis] *= -1
                    if not self.axis_aligned_boxes:
                        b[:, 6] = (np.pi - b[:, 6]) if axis == 0 else -b[:, 6]
                    data["boxes"] = b
        return data

    def __repr__(self) -> str:
        return f"RandomFlip(p={self.p})"


class RandomJitter:
    """Add ``clip(sigma * N(0, 1), -clip, clip)`` to every coordinate."""

    def __init__(self, sigma: float = 0.01, clip: float = 0.05):
        if sigma < 0 or clip <= 0:
            raise ValueError(f"RandomJitter: need sigma >= 0 and clip > 0, got sigma={sigma}, clip={clip}")
        self.sigma, self.clip = float(sigma), float(clip)

    def __call__(self, data: Sample, rng: np.random.Generator) -> Sample:
        c = data["coord"]
        noise = rng.standard_normal(c.shape, dtype=np.float32) * np.float32(self.sigma)
        np.clip(noise, -self.clip, self.clip, out=noise)
        data["coord"] = c + noise
        return data

    def __repr__(self) -> str:
        return f"RandomJitter(sigma={self.sigma}, clip={self.clip})"


class ElasticDistortion:
    """Elastic distortion (Pointcept / MinkowskiEngine): applied with probability ``p``.

    For each ``(granularity, magnitude)`` in ``distortion_params``: Gaussian noise on a grid of
    spacing ``granularity`` covering the cloud (+1 cell margin each side), box-blurred twice along
    x, y, z (kernel ``[1,1,1]/3``, zero padding), trilinearly interpolated at every point and added
    times ``magnitude``.
    """

    def __init__(
        self,
        distortion_params: Sequence[Sequence[float]] | None = ((0.2, 0.4), (0.8, 1.6)),
        p: float = 0.95,
    ):
        self.params = (
            [] if distortion_params is None else [(float(g), float(m)) for g, m in distortion_params]
        )
        for g, _ in self.params:
            if g <= 0:
                raise ValueError(f"ElasticDistortion.distortion_params: granularity must be > 0, got {g}")
        self.p = check_prob("ElasticDistortion.p", p)

    def __call__(self, data: Sample, rng: np.random.Generator) -> Sample:
        if not self.params or rng.random() >= self.p:
            return data
        coord = np.ascontiguousarray(data["coord"], dtype=np.float32).copy()
        for granularity, magnitude in self.params:
            lo, hi = (b.astype(np.float64) for b in bounds(coord))
            dims = ((hi - lo) // granularity).astype(np.int64) + 3
            noise = rng.standard_normal((*dims, 3), dtype=np.float32)
            noise = blur_noise(noise)
            trilinear_add(coord, noise, lo - granularity, granularity, magnitude)
        data["coord"] = coord
        return data

    def __repr__(self) -> str:
        return f"ElasticDistortion(distortion_params={self.params}, p={self.p})"
