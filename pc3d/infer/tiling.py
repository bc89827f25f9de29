"""Split a large scan into overlapping xy tiles of bounded size, for inference in bounded memory."""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass
class Tile:
    """One tile: ``core (K,)`` indices of the points it owns (every point is in exactly one core)
    and ``members (M,)`` the points it is run on (its core plus ``overlap`` metres around it)."""

    core: np.ndarray
    members: np.ndarray


def xy_tiles(coord: np.ndarray, max_points: int, overlap: float) -> list[Tile]:
    """Tiles of ``coord (N, 3)`` whose members number at most ``max_points`` where possible.

    The scan is cut recursively at the median of its longer xy side (a k-d split, so dense and
    sparse parts get tiles of similar point counts) until a tile's core grown by ``overlap``
    metres holds at most ``max_points`` points. A tile is not cut below ``2 * overlap`` metres or
    2 points, so an extremely dense spot can exceed ``max_points``. One tile when ``N <= max_points``.
    """
    if max_points < 1:
        raise ValueError(f"max_points: must be >= 1, got {max_points}")
    if overlap < 0:
        raise ValueError(f"overlap: must be >= 0 metres, got {overlap}")
    xy = np.ascontiguousarray(coord[:, :2], dtype=np.float64)
    n = xy.shape[0]
    if n <= max_points:
        everything = np.arange(n)
        return [Tile(core=everything, members=everything)]
    tiles: list[Tile] = []
    stack = [np.arange(n)]
    while stack:
        core = stack.pop()
        lo, hi = xy[core].min(0), xy[core].max(0)
        members = np.flatnonzero(((xy >= lo - overlap) & (xy <= hi + overlap)).all(1))
        side = hi - lo
        axis = int(np.argmax(side))
        if len(members) <= max_points or side[axis] <= 2 * overlap or len(core) < 2:
            tiles.append(Tile(core=core, members=members))
            continue
        values = xy[core, axis]
        cut = float(np.median(values))
        left = values < cut
        if left.all() or not left.any():  # many equal values at the median
            cut = float((values.min() + values.max()) / 2)
            left = values < cut
            if left.all() or not left.any():
                tiles.append(Tile(core=core, members=members))
                continue
        stack += [core[~left], core[left]]
    return tiles
