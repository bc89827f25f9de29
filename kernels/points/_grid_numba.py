"""Numba kernels for voxel grouping (private; see :mod:`pc3d.kernels.points.grid`)."""

from __future__ import annotations

import numba as nb
import numpy as np

from ._common import ParallelKernel


@nb.njit(parallel=True, cache=True)
def floor_grid(coord, grid_size):
    """``floor(coord / grid_size)`` in float64 as int64 ``(N, 3)``, and the number of non-finite rows."""
    n = coord.shape[0]
    g = np.empty((n, 3), np.int64)
    bad = 0
    for i in nb.prange(n):
        ok = True
        for d in range(3):
            v = np.float64(coord[i, d])
            if not np.isfinite(v):
                ok = False
                v = 0.0
            g[i, d] = np.int64(np.floor(v / grid_size))
        if not ok:
            bad += 1
    return g, bad


@nb.njit(parallel=True, cache=True)
def pick_members(vstart, counts, members, u):
    """``members[vstart[v] + floor(u[v] * counts[v])]`` for every voxel ``v``."""
    m = counts.shape[0]
    keep = np.empty(m, np.int64)
    for v in nb.prange(m):
        r = np.int64(u[v] * counts[v])
        if r >= counts[v]:
            r = counts[v] - 1
        keep[v] = members[vstart[v] + r]
    return keep


@nb.njit(parallel=True, cache=True)
def cloud_min_extent(g, offsets):
    """Per-cloud min grid coord ``(B, 3)`` and max extent ``(B, 3)`` (max - min)."""
    b = offsets.shape[0] - 1
    gmin = np.zeros((b, 3), np.int64)
    ext = np.zeros((b, 3), np.int64)
    for c in nb.prange(b):
        s = offsets[c]
        e = offsets[c + 1]
        if e > s:
            for d in range(3):
                lo = g[s, d]
                hi = g[s, d]
                for i in range(s + 1, e):
                    v = g[i, d]
                    if v < lo:
                        lo = v
                    if v > hi:
                        hi = v
                gmin[c, d] = lo
                ext[c, d] = hi - lo
    return gmin, ext


@nb.njit(parallel=True, cache=True)
def voxel_keys(g, offsets, gmin, ext):
    """Linear key ``((cloud * ex + x) * ey + y) * ez + z`` of every point (x, y, z relative to the cloud min)."""
    n = g.shape[0]
    keys = np.empty(n, np.int64)
    ex = ext[0]
    ey = ext[1]
    ez = ext[2]
    for c in nb.prange(offsets.shape[0] - 1):
        for i in range(offsets[c], offsets[c + 1]):
            keys[i] = ((c * ex + (g[i, 0] - gmin[c, 0])) * ey + (g[i, 1] - gmin[c, 1])) * ez + (
                g[i, 2] - gmin[c, 2]
            )
    return keys


@nb.njit(cache=True)
def group_sorted(order, skeys, ext):
    """Voxels from the stable key sort: ``grid (M, 3) int32``, ``batch``, ``inverse``, ``counts``, ``vstart (M+1,)``.

    Voxels come in key order (cloud, then x, y, z); ``order`` itself lists the members of
    every voxel contiguously, in increasing index order.
    """
    n = order.shape[0]
    m = 0
    for j in range(n):
        if j == 0 or skeys[j] != skeys[j - 1]:
            m += 1
    vstart = np.empty(m + 1, np.int64)
    inverse = np.empty(n, np.int64)
    v = -1
    for j in range(n):
        if j == 0 or skeys[j] != skeys[j - 1]:
            v += 1
            vstart[v] = j
        inverse[order[j]] = v
    vstart[m] = n
    counts = np.empty(m, np.int64)
    grid = np.empty((m, 3), np.int32)
    batch = np.empty(m, np.int64)
    ex = ext[0]
    ey = ext[1]
    ez = ext[2]
    for v in range(m):
        counts[v] = vstart[v + 1] - vstart[v]
        key = skeys[vstart[v]]
        grid[v, 2] = key % ez
        key //= ez
        grid[v, 1] = key % ey
        key //= ey
        grid[v, 0] = key % ex
        batch[v] = key // ex
    return grid, batch, inverse, counts, vstart


# serial compilations for small jobs and forked processes (see ParallelKernel)
floor_grid = ParallelKernel(floor_grid)
pick_members = ParallelKernel(pick_members)
cloud_min_extent = ParallelKernel(cloud_min_extent)
voxel_keys = ParallelKernel(voxel_keys)
