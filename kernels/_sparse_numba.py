"""Numba kernel for the CPU sparse conv (private; see :mod:`pc3d.kernels.sparse`)."""

from __future__ import annotations

import numba as nb

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
