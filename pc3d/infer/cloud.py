"""The in-memory point cloud that every reader returns and every predictor consumes."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np


class InputError(ValueError):
    """A user's input file or array cannot be used; the message names it and says what was expected."""


@dataclasses.dataclass
class Cloud:
    """One scan as read from a file.

    Attributes:
        coord: ``(N, 3)`` float64 coordinates in metres.
        color: ``(N, 3)`` uint8 RGB, or ``None``.
        normal: ``(N, 3)`` float32 unit normals, or ``None``.
        intensity: ``(N,)`` float32 reflectance in [0, 1] (KITTI convention), or ``None``.
        source: where the cloud came from (file path), for messages.
        rows: ``(N,)`` int64 row of each point in the file or array it was read from, when
            :meth:`finite` dropped rows; ``None``: point ``i`` is row ``i``.
        num_rows: rows in that file or array (``N`` when none were dropped).
    """

    coord: np.ndarray
    color: np.ndarray | None = None
    normal: np.ndarray | None = None
    intensity: np.ndarray | None = None
    source: str = "<array>"
    rows: np.ndarray | None = None
    num_rows: int = -1

    def __post_init__(self) -> None:
        self.coord = _field(self.coord, "points", np.float64, 3, self.source)
        n = self.coord.shape[0]
        if self.num_rows < 0:
            self.num_rows = n
        self.color = None if self.color is None else as_uint8_color(self.color, self.source)
        self.normal = _field(self.normal, "normals", np.float32, 3, self.source)
        if self.intensity is not None:
            self.intensity = np.asarray(self.intensity, dtype=np.float32).reshape(-1)
        for name in ("color", "normal", "intensity"):
            arr = getattr(self, name)
            if arr is not None and arr.shape[0] != n:
                raise InputError(f"{self.source}: {name} has {arr.shape[0]} rows but there are {n} points")

    @property
    def num_points(self) -> int:
        return int(self.coord.shape[0])

    @property
    def dropped(self) -> int:
        """Rows of the source left out (NaN/inf values)."""
        return self.num_rows - self.num_points

    def row_index(self) -> np.ndarray:
        """``(N,)`` row of each point in its source."""
        return np.arange(self.num_points) if self.rows is None else self.rows

    def to_rows(self, values: np.ndarray, fill) -> np.ndarray:
        """Per-point ``values (N, ...)`` spread over the source's rows; dropped rows get ``fill``."""
        values = np.asarray(values)
        if self.rows is None:
            return values
        out = np.full((self.num_rows, *values.shape[1:]), fill, dtype=values.dtype)
        out[self.rows] = values
        return out

    def finite(self) -> Cloud:
        """This cloud without the points whose coordinates, normal or intensity are NaN/inf.

        Warns once with the number dropped; raises :class:`InputError` when no point is left.
        """
        if self.num_points == 0:
            raise InputError(f"{self.source}: the file holds no points")
        keep = np.isfinite(self.coord).all(1)
        if self.normal is not None:
            keep &= np.isfinite(self.normal).all(1)
        if self.intensity is not None:
            keep &= np.isfinite(self.intensity)
        if keep.all():
            return self
        bad = int((~keep).sum())
        if not keep.any():
            raise InputError(f"{self.source}: all {self.num_points} points have NaN or infinite values")
        warnings.warn(
            f"{self.source}: dropped {bad} of {self.num_points} points with NaN/inf values", stacklevel=2
        )
        return Cloud(
            coord=self.coord[keep],
            color=None if self.color is None else self.color[keep],
            normal=None if self.normal is None else self.normal[keep],
            intensity=None if self.intensity is None else self.intensity[keep],
            source=self.source,
            rows=self.row_index()[keep],
            num_rows=self.num_rows,
        )


def as_uint8_color(color: np.ndarray, source: str = "<array>") -> np.ndarray:
    """RGB ``(N, 3)`` as uint8: uint8 unchanged, 16-bit integers scaled down when above 255, floats
    in [0, 1] scaled by 255, other floats taken as 0..255 (rounded, clipped)."""
    c = np.asarray(color)
    if c.ndim != 2 or c.shape[1] != 3:
        raise InputError(f"{source}: colors: expected (N, 3), got {c.shape}")
    if c.dtype == np.uint8:
        return c
    if np.issubdtype(c.dtype, np.integer):
        c = c.astype(np.int64)
        if c.size and c.max() > 255:
            c = c >> 8
        return np.clip(c, 0, 255).astype(np.uint8)
    c = np.nan_to_num(c.astype(np.float64), nan=0.0, posinf=255.0, neginf=0.0)
    if c.size and c.max() <= 1.0:
        c = c * 255.0
    return np.clip(np.round(c), 0, 255).astype(np.uint8)


def _field(value, name: str, dtype, width: int, source: str) -> np.ndarray | None:
    if value is None:
        return None
    arr = np.asarray(value, dtype=dtype)
    if arr.ndim != 2 or arr.shape[1] != width:
        raise InputError(f"{source}: {name}: expected ({'N'}, {width}), got {arr.shape}")
    return arr


def local_origin(coord: np.ndarray, limit: float = 1024.0) -> np.ndarray:
    """An offset ``(3,)`` that brings georeferenced coordinates (e.g. UTM in LAS files) near 0
    before they become float32: the centre rounded to a multiple of ``limit`` metres, or 0 when
    every coordinate is already within ``limit`` of the origin (the model input is centred by the
    pipeline either way, so the offset changes nothing but float32 rounding)."""
    lo, hi = coord.min(0), coord.max(0)
    if max(np.abs(lo).max(), np.abs(hi).max()) < limit:
        return np.zeros(3)
    return np.round((lo + hi) / 2.0 / limit) * limit


def as_cloud(points, colors=None, normals=None, intensity=None) -> Cloud:
    """A finite :class:`Cloud` (rows with NaN/inf dropped, with a warning) from arrays or a Cloud."""
    if isinstance(points, Cloud):
        cloud = points
        if colors is not None or normals is not None or intensity is not None:
            cloud = dataclasses.replace(
                cloud,
                color=colors if colors is not None else cloud.color,
                normal=normals if normals is not None else cloud.normal,
                intensity=intensity if intensity is not None else cloud.intensity,
            )
        return cloud.finite()
    pts = _points(points)
    if intensity is None and pts.shape[1] == 4:
        intensity = pts[:, 3]
    return Cloud(
        coord=pts[:, :3], color=colors, normal=normals, intensity=intensity, source="points"
    ).finite()


def _points(points) -> np.ndarray:
    if hasattr(points, "detach"):
        points = points.detach().cpu().numpy()
    arr = np.asarray(points)
    if arr.ndim != 2 or arr.shape[1] < 3:
        raise InputError(f"points: expected an (N, 3) array, got shape {arr.shape}")
    return arr
