"""Tiles of a large scan: every point owned once, bounded size, overlap margins."""

from __future__ import annotations

import numpy as np
import pytest

from pc3d.infer.tiling import xy_tiles


def test_tiles_cover_each_point_once_and_are_bounded():
    rng = np.random.default_rng(0)
    coord = rng.random((20000, 3)) * [30.0, 10.0, 3.0]
    coord[:5000, :2] *= 0.1  # a dense corner
    tiles = xy_tiles(coord, max_points=3000, overlap=0.5)
    cores = np.concatenate([t.core for t in tiles])
    assert len(cores) == len(coord) and len(np.unique(cores)) == len(coord)
    assert max(len(t.members) for t in tiles) <= 3000
    for t in tiles:
        assert np.isin(t.core, t.members).all()
        lo, hi = coord[t.core, :2].min(0), coord[t.core, :2].max(0)
        inside = ((coord[:, :2] >= lo - 0.5) & (coord[:, :2] <= hi + 0.5)).all(1)
        np.testing.assert_array_equal(np.flatnonzero(inside), t.members)  # the whole margin, nothing else


def test_small_scan_is_one_tile_and_arguments_are_checked():
    coord = np.zeros((10, 3))
    (tile,) = xy_tiles(coord, 100, 1.0)
    np.testing.assert_array_equal(tile.core, np.arange(10))
    (tile,) = xy_tiles(np.zeros((500, 3)), 100, 1.0)  # one spot cannot be cut
    assert len(tile.core) == 500
    with pytest.raises(ValueError, match="max_points"):
        xy_tiles(coord, 0, 1.0)
    with pytest.raises(ValueError, match="overlap"):
        xy_tiles(coord, 10, -1.0)
