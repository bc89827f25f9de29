"""Numba kernel for the CPU sparse conv (private; see :mod:`pc3d.kernels.sparse`)."""

from __future__ import annotations

import numba as nb
import numpy as np

from pc3d.kernels.points._common import ParallelKernel


@nb.njit(parallel=True, fastmath=True, cache=True)
def _scatter_add_rows(out, rows, src):
    """``out[rows[p]] += src[p]`` for every ``p``: ``out (N, C)``, ``rows (P,)`` int32, ``src (P, C)``.

    ``rows`` must not repeat (one kernel offset of a sparse conv maps each row at most once), so
    the threads never write the same row.
    """
    c = src.shape[1]
    for p in nb.prange(rows.shape[0]):
        r = rows[p]
        for j in range(c):
            out[r, j] += src[p, j]


scatter_add_rows = ParallelKernel(_scatter_add_rows)


@nb.njit(cache=True)
def first_repeat(sorted_keys):
    """Index of the first key equal to its predecessor in a sorted ``(N,)`` array, or -1."""
    for i in range(1, sorted_keys.shape[0]):
        if sorted_keys[i] == sorted_keys[i - 1]:
            return i
    return -1


@nb.njit(parallel=True, cache=True)
def _subm_pairs(sorted_keys, rows, deltas, run, step, pairs, counts):
    """Submanifold conv pairs by merging the sorted keys with themselves shifted by each offset.

    ``sorted_keys (N,)`` int64 unique voxel keys in a padded grid (so a shift never wraps into another
    row of the grid), ``rows (N,)`` their rows, ``deltas (KV,)`` the key shift of each kernel offset.
    Offsets come in runs of ``run`` along the last axis, ``step`` apart in key, so one merge pass per
    run finds them all. Writes ``pairs[0, k, :n_k]`` (input rows), ``pairs[1, k, :n_k]`` (output rows)
    and ``counts[k] = n_k``.
    """
    n = sorted_keys.shape[0]
    for g in nb.prange(deltas.shape[0] // run):
        first = deltas[g * run]
        c = np.zeros(run, dtype=np.int64)
        j = 0
        for i in range(n):
            target = sorted_keys[i] + first
            while j < n and sorted_keys[j] < target:
                j += 1
            jj = j
            for t in range(run):
                want = target + t * step
                while jj < n and sorted_keys[jj] < want:
                    jj += 1
                if jj == n:
                    break
                if sorted_keys[jj] == want:
                    k = g * run + t
                    pairs[0, k, c[t]] = rows[jj]
                    pairs[1, k, c[t]] = rows[i]
                    c[t] += 1
        for t in range(run):
            counts[g * run + t] = c[t]


subm_pairs = ParallelKernel(_subm_pairs)
