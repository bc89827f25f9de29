"""Numba kernels for z-order and Hilbert codes (private; see :mod:`pc3d.kernels.points.serialization`)."""

from __future__ import annotations

import numba as nb
import numpy as np

from ._common import ParallelKernel


@nb.njit(cache=True, inline="always")
def _spread3(v):
    # put bit i of a (<= 21-bit) value at bit 3i
    v &= 0x1FFFFF
    v = (v | (v << 32)) & 0x1F00000000FFFF
    v = (v | (v << 16)) & 0x1F0000FF0000FF
    v = (v | (v << 8)) & 0x100F00F00F00F00F
    v = (v | (v << 4)) & 0x10C30C30C30C30C3
    v = (v | (v << 2)) & 0x1249249249249249
    return v


@nb.njit(cache=True, inline="always")
def _zcode(x, y, z):
    return (_spread3(x) << 2) | (_spread3(y) << 1) | _spread3(z)


_CHUNK = 512


@nb.njit(parallel=True, cache=True)
def encode(grid, batch, kind, depth):
    """Codes ``(N,)`` int64: ``kind`` 0 z, 1 z-trans, 2 hilbert, 3 hilbert-trans; batch above ``3*depth`` bits.

    Points are processed in chunks with the bit level as the outer loop, so the branch-free
    inner loop over points vectorises.
    """
    n = grid.shape[0]
    out = np.empty(n, np.int64)
    shift = 3 * depth
    a0 = 1 if (kind == 1 or kind == 3) else 0
    a1 = 1 - a0
    nchunks = (n + _CHUNK - 1) // _CHUNK
    for ch in nb.prange(nchunks):
        s = ch * _CHUNK
        e = min(n, s + _CHUNK)
        m = e - s
        x = np.empty(m, np.int64)
        y = np.empty(m, np.int64)
        z = np.empty(m, np.int64)
        for i in range(m):
            x[i] = grid[s + i, a0]
            y[i] = grid[s + i, a1]
            z[i] = grid[s + i, 2]
        if kind >= 2:
            q = depth - 1
            while q > 0:
                p = (np.int64(1) << q) - 1
                for i in range(m):
                    xi = x[i]
                    yi = y[i]
                    zi = z[i]
                    on = -((xi >> q) & 1)
                    xi ^= p & on
                    on = -((yi >> q) & 1)
                    xi ^= p & on
                    t = (xi ^ yi) & p & ~on
                    xi ^= t
                    yi ^= t
                    on = -((zi >> q) & 1)
                    xi ^= p & on
                    t = (xi ^ zi) & p & ~on
                    xi ^= t
                    zi ^= t
                    x[i] = xi
                    y[i] = yi
                    z[i] = zi
                q -= 1
        for i in range(m):
            g = _zcode(x[i], y[i], z[i])
            if kind >= 2:
                g ^= g >> 1
                g ^= g >> 2
                g ^= g >> 4
                g ^= g >> 8
                g ^= g >> 16
                g ^= g >> 32
            out[s + i] = (np.int64(batch[s + i]) << shift) | g
    return out


@nb.njit(cache=True)
def radix_sort_pairs(keys):
    """Stable sort of non-negative int64 keys: ``(argsort, sorted keys)``.

    LSD radix sort with 11-bit digits; digits that are equal for all keys are skipped, so
    keys below ``2^33`` take at most 3 passes.
    """
    n = keys.shape[0]
    idx = np.arange(n)
    k = keys.copy()
    if n < 2:
        return idx, k
    tk = np.empty_like(k)
    ti = np.empty_like(idx)
    maxk = k.max()
    shift = 0
    count = np.empty(2049, np.int64)
    while shift < 63 and (maxk >> shift) > 0:
        count[:] = 0
        for i in range(n):
            count[((k[i] >> shift) & 2047) + 1] += 1
        trivial = False
        for d in range(1, 2049):
            if count[d] == n:
                trivial = True
                break
        if not trivial:
            for d in range(1, 2049):
                count[d] += count[d - 1]
            for i in range(n):
                d = (k[i] >> shift) & 2047
                p = count[d]
                tk[p] = k[i]
                ti[p] = idx[i]
                count[d] = p + 1
            k, tk = tk, k
            idx, ti = ti, idx
        shift += 11
    return idx, k


@nb.njit(cache=True)
def radix_argsort(keys):
    """Stable argsort of non-negative int64 keys (see :func:`radix_sort_pairs`)."""
    return radix_sort_pairs(keys)[0]


@nb.njit(parallel=True, cache=True)
def invert_permutation(order):
    inv = np.empty_like(order)
    for i in nb.prange(order.shape[0]):
        inv[order[i]] = i
    return inv


# serial compilations for small jobs and forked processes (see ParallelKernel)
encode = ParallelKernel(encode)
invert_permutation = ParallelKernel(invert_permutation)
