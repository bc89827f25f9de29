"""Point subsampling: dropout, grid sampling (via :func:`pc3d.kernels.points.grid_sample`), crops."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from pc3d.data.transforms.base import Sample, bounds, check_prob, index_points
from pc3d.kernels.points import grid_sample


class RandomDropout:
    """With probability ``p`` keep a random ``floor(N * (1 - dropout_ratio))`` points (original order)."""

    def __init__(self, dropout_ratio: float = 0.2, p: float = 0.2):
        if not 0.0 <= dropout_ratio < 1.0:
            raise ValueError(f"RandomDropout.dropout_ratio: expected [0, 1), got {dropout_ratio}")
        self.dropout_ratio = float(dropout_ratio)
        self.p = check_prob("RandomDropout.p", p)

    def __call__(self, data: Sample, rng: np.random.Generator) -> Sample:
        if rng.random() >= self.p:
            return data
        n = data["coord"].shape[0]
        keep = int(n * (1 - self.dropout_ratio))
        idx = np.sort(rng.permutation(n)[:keep])
        return index_points(data, idx)

    def __repr__(self) -> str:
        return f"RandomDropout(dropout_ratio={self.dropout_ratio}, p={self.p})"


def grid_coord_of(coord: np.ndarray, grid_size: float) -> np.ndarray:
    """``floor(coord / grid_size) - min`` as int32 ``(N, 3)`` (the voxels of ``grid_sample``)."""
    g = np.floor(coord.astype(np.float64) / grid_size).astype(np.int64)
    if len(g):
        g -= bounds(g)[0]
    return g.astype(np.int32)


def _torch_generator(rng: np.random.Generator) -> torch.Generator:
    gen = torch.Generator()
    gen.manual_seed(int(rng.integers(0, 2**63 - 1)))
    return gen


class GridSample:
    """Pointcept ``GridSample`` on one cloud; adds ``grid_coord (M, 3) int32``.

    ``mode="train"``: one random point per voxel of edge ``grid_size``; with ``return_inverse``
    also stores ``inverse (N_orig,) int64`` (row of the kept point of each original point) under the
    scene key ``"inverse"``. ``mode="test"`` is not a per-sample transform: use :meth:`fragments`.
    """

    def __init__(self, grid_size: float = 0.02, mode: str = "train", return_inverse: bool = False):
        if grid_size <= 0:
            raise ValueError(f"GridSample.grid_size: must be > 0, got {grid_size}")
        if mode not in ("train", "test"):
            raise ValueError(f"GridSample.mode: expected 'train' or 'test', got {mode!r}")
        self.grid_size = float(grid_size)
        self.mode = mode
        self.return_inverse = return_inverse

    def __call__(self, data: Sample, rng: np.random.Generator) -> Sample:
        if self.mode != "train":
            raise ValueError("GridSample(mode='test') splits a sample into fragments: call .fragments(data)")
        coord = np.ascontiguousarray(data["coord"])
        grid = grid_coord_of(coord, self.grid_size)
        keep, inverse = grid_sample(coord, self.grid_size, mode="train", generator=_torch_generator(rng))
        data = index_points(data, keep)
        data["grid_coord"] = grid[keep]
        if self.return_inverse:
            data["inverse"] = inverse.astype(np.int64)
        return data

    def fragments(self, data: Sample) -> list[Sample]:
        """Test mode: ``C = max voxel count`` fragments; fragment ``i`` holds, for every voxel ``v``,
        its member ``i mod count_v`` (Pointcept). Each fragment gets ``index (M,) int64``: the
        original point id of each row; together the fragments cover every original point."""
        coord = np.ascontiguousarray(data["coord"])
        grid = grid_coord_of(coord, self.grid_size)
        frags, _ = grid_sample(coord, self.grid_size, mode="test", repeat=True)
        out = []
        for idx in frags:
            part = index_points(dict(data), idx)
            part["grid_coord"] = grid[idx]
            part["index"] = idx.astype(np.int64)
            out.append(part)
        return out

    def __repr__(self) -> str:
        return f"GridSample(grid_size={self.grid_size}, mode={self.mode!r}, return_inverse={self.return_inverse})"


class SphereCrop:
    """If ``N > point_max`` keep the ``point_max`` points nearest to a random point (``mode="random"``)
    or to the cloud's bounding-box centre (``mode="center"``); original order is kept."""

    def __init__(self, point_max: int = 102400, mode: str = "random"):
        if point_max < 1:
            raise ValueError(f"SphereCrop.point_max: must be >= 1, got {point_max}")
        if mode not in ("random", "center"):
            raise ValueError(f"SphereCrop.mode: expected 'random' or 'center', got {mode!r}")
        self.point_max = int(point_max)
        self.mode = mode

    def __call__(self, data: Sample, rng: np.random.Generator) -> Sample:
        c = data["coord"]
        n = c.shape[0]
        if n <= self.point_max:
            return data
        center = c[rng.integers(n)] if self.mode == "random" else np.add(*bounds(c)) / 2
        d2 = ((c - center) ** 2).sum(1)
        idx = np.sort(np.argpartition(d2, self.point_max - 1)[: self.point_max])
        return index_points(data, idx)

    def __repr__(self) -> str:
        return f"SphereCrop(point_max={self.point_max}, mode={self.mode!r})"


class PointSample:
    """mmdetection3d ``PointSample``: draw ``num_points`` points uniformly, without replacement when
    ``N >= num_points`` and with replacement otherwise (original order kept)."""

    def __init__(self, num_points: int = 40000):
        if num_points < 1:
            raise ValueError(f"PointSample.num_points: must be >= 1, got {num_points}")
        self.num_points = int(num_points)

    def __call__(self, data: Sample, rng: np.random.Generator) -> Sample:
        n = data["coord"].shape[0]
        if n == 0:
            raise ValueError("PointSample: the cloud has no points")
        if n >= self.num_points:
            idx = np.sort(rng.permutation(n)[: self.num_points])
        else:
            idx = np.sort(rng.integers(0, n, size=self.num_points))
        return index_points(data, idx)

    def __repr__(self) -> str:
        return f"PointSample(num_points={self.num_points})"


def keep_keys(data: Sample, keys: Sequence[str]) -> Sample:
    """Drop every key not in ``keys``."""
    return {k: v for k, v in data.items() if k in keys}
