"""Numba kernels for FPS, ball query and kNN (private; see the public wrappers)."""

from __future__ import annotations

import numba as nb
import numpy as np

from ._common import ParallelKernel
from ._serial_numba import radix_sort_pairs


@nb.njit(parallel=True, cache=True)
def fps_kernel(xyz, offsets, soffsets):
    """D-FPS per cloud; starts at the cloud's first point; ties go to the lowest index."""
    nb_clouds = offsets.shape[0] - 1
    out = np.empty(soffsets[nb_clouds], np.int64)
    for c in nb.prange(nb_clouds):
        s = offsets[c]
        n = offsets[c + 1] - s
        k = soffsets[c + 1] - soffsets[c]
        if k == 0:
            continue
        x = np.empty(n, xyz.dtype)
        y = np.empty(n, xyz.dtype)
        z = np.empty(n, xyz.dtype)
        for i in range(n):
            x[i] = xyz[s + i, 0]
            y[i] = xyz[s + i, 1]
            z[i] = xyz[s + i, 2]
        dist = np.full(n, 1e10, xyz.dtype)
        cur = 0
        o = soffsets[c]
        out[o] = s
        kk = min(k, n)
        for t in range(1, kk):
            cx = x[cur]
            cy = y[cur]
            cz = z[cur]
            for i in range(n):
                dx = x[i] - cx
                dy = y[i] - cy
                dz = z[i] - cz
                d = dx * dx + dy * dy + dz * dz
                dist[i] = min(dist[i], d)
            best = dist[0]
            bi = 0
            for i in range(1, n):
                if dist[i] > best:
                    best = dist[i]
                    bi = i
            cur = bi
            out[o + t] = s + bi
        for t in range(kk, k):  # fewer points than samples: cycle through the selection
            out[o + t] = out[o + t - kk]
    return out


@nb.njit(parallel=True, cache=True)
def ball_query_kernel(xyz, offsets, centers, cbatch, r2, k):
    """First ``k`` points (index order) with ``d2 < r2`` or ``d2 == 0``; padded with the first hit.

    Empty ball: all slots hold the nearest point of the cloud (lowest index on ties); empty cloud: -1.
    """
    m = centers.shape[0]
    out = np.full((m, k), -1, np.int64)
    for q in nb.prange(m):
        c = cbatch[q]
        s = offsets[c]
        e = offsets[c + 1]
        qx = centers[q, 0]
        qy = centers[q, 1]
        qz = centers[q, 2]
        cnt = 0
        for i in range(s, e):
            dx = xyz[i, 0] - qx
            dy = xyz[i, 1] - qy
            dz = xyz[i, 2] - qz
            d = dx * dx + dy * dy + dz * dz
            if d == 0 or d < r2:
                if cnt == 0:
                    for j in range(k):
                        out[q, j] = i
                else:
                    out[q, cnt] = i
                cnt += 1
                if cnt >= k:
                    break
        if cnt == 0 and e > s:
            best = np.inf
            bi = s
            for i in range(s, e):
                dx = xyz[i, 0] - qx
                dy = xyz[i, 1] - qy
                dz = xyz[i, 2] - qz
                d = dx * dx + dy * dy + dz * dz
                if d < best:
                    best = d
                    bi = i
            for j in range(k):
                out[q, j] = bi
    return out


@nb.njit(parallel=True, cache=True)
def knn_kernel(xyz, offsets, query, qbatch, k):
    """k nearest (ascending squared distance, lower index first on ties); pad -1 / inf."""
    m = query.shape[0]
    idx = np.full((m, k), -1, np.int64)
    dist = np.full((m, k), np.inf, xyz.dtype)
    for q in nb.prange(m):
        c = qbatch[q]
        s = offsets[c]
        e = offsets[c + 1]
        qx = query[q, 0]
        qy = query[q, 1]
        qz = query[q, 2]
        bd = dist[q]
        bi = idx[q]
        worst = bd[k - 1]
        for i in range(s, e):
            dx = xyz[i, 0] - qx
            dy = xyz[i, 1] - qy
            dz = xyz[i, 2] - qz
            d = dx * dx + dy * dy + dz * dz
            if d < worst or bi[k - 1] < 0:
                j = k - 1
                while j > 0 and (bd[j - 1] > d or bi[j - 1] < 0):
                    bd[j] = bd[j - 1]
                    bi[j] = bi[j - 1]
                    j -= 1
                bd[j] = d
                bi[j] = i
                worst = bd[k - 1]
    return idx, dist


@nb.njit(cache=True)
def _nearest(xyz, s, e, qx, qy, qz):
    best = np.inf
    bi = s
    for i in range(s, e):
        dx = xyz[i, 0] - qx
        dy = xyz[i, 1] - qy
        dz = xyz[i, 2] - qz
        d = dx * dx + dy * dy + dz * dz
        if d < best:
            best = d
            bi = i
    return bi


@nb.njit(parallel=True, cache=True)
def ball_query_grid_kernel(xyz, offsets, centers, coffsets, r, k):
    """Same result as :func:`ball_query_kernel`, using a uniform grid of cell size ``r`` per cloud.

    Used for sparse clouds where the in-order scan would visit most points; the hits of the
    27 neighbouring cells are merged into the ``k`` lowest indices.
    """
    m = centers.shape[0]
    out = np.full((m, k), -1, np.int64)
    r2 = r * r
    for c in range(offsets.shape[0] - 1):
        s = offsets[c]
        e = offsets[c + 1]
        qs = coffsets[c]
        qe = coffsets[c + 1]
        n = e - s
        if n == 0 or qe == qs:
            continue
        mn = np.empty(3)
        dims = np.empty(3, np.int64)
        for d in range(3):
            lo = np.inf
            hi = -np.inf
            for i in range(s, e):
                v = xyz[i, d]
                lo = min(lo, v)
                hi = max(hi, v)
            mn[d] = lo
            dims[d] = np.int64(np.floor((hi - lo) / r)) + 1
        keys = np.empty(n, np.int64)
        for i in range(n):
            ix = np.int64(np.floor((xyz[s + i, 0] - mn[0]) / r))
            iy = np.int64(np.floor((xyz[s + i, 1] - mn[1]) / r))
            iz = np.int64(np.floor((xyz[s + i, 2] - mn[2]) / r))
            keys[i] = (ix * dims[1] + iy) * dims[2] + iz
        order, skeys = radix_sort_pairs(keys)
        for q in nb.prange(qs, qe):
            qx = centers[q, 0]
            qy = centers[q, 1]
            qz = centers[q, 2]
            cx = np.int64(np.floor((qx - mn[0]) / r))
            cy = np.int64(np.floor((qy - mn[1]) / r))
            cz = np.int64(np.floor((qz - mn[2]) / r))
            best = np.empty(k, np.int64)  # sorted k lowest hit indices
            cnt = 0
            for ax in range(cx - 1, cx + 2):
                if ax < 0 or ax >= dims[0]:
                    continue
                for ay in range(cy - 1, cy + 2):
                    if ay < 0 or ay >= dims[1]:
                        continue
                    # the three z-cells of this (x, y) column have consecutive keys
                    az0 = max(cz - 1, 0)
                    az1 = min(cz + 1, dims[2] - 1)
                    if az0 > az1:
                        continue
                    base = (ax * dims[1] + ay) * dims[2]
                    j = np.searchsorted(skeys, base + az0)
                    kend = base + az1
                    while j < n and skeys[j] <= kend:
                        i = s + order[j]
                        j += 1
                        dx = xyz[i, 0] - qx
                        dy = xyz[i, 1] - qy
                        dz = xyz[i, 2] - qz
                        d = dx * dx + dy * dy + dz * dz
                        if not (d == 0 or d < r2):
                            continue
                        if cnt == k and i >= best[k - 1]:
                            continue
                        p = cnt if cnt < k else k - 1
                        while p > 0 and best[p - 1] > i:
                            best[p] = best[p - 1]
                            p -= 1
                        best[p] = i
                        if cnt < k:
                            cnt += 1
            if cnt == 0:
                bi = _nearest(xyz, s, e, qx, qy, qz)
                for j in range(k):
                    out[q, j] = bi
            else:
                for j in range(k):
                    out[q, j] = best[j] if j < cnt else best[0]
    return out


# serial compilations for small jobs and forked processes (see ParallelKernel)
fps_kernel = ParallelKernel(fps_kernel)
ball_query_kernel = ParallelKernel(ball_query_kernel)
knn_kernel = ParallelKernel(knn_kernel)
ball_query_grid_kernel = ParallelKernel(ball_query_grid_kernel)
