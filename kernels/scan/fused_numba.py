"""Numba CPU kernels of the token-major mixer ops (:mod:`pc3d.kernels.scan.fused`): forward and backward.

Rows are tokens: every array is ``(L, channels)`` with the channels contiguous, so each pass runs its
inner loop across the channels of one row (vectorised) and the scan order only decides which row comes
next (row-index arithmetic, no permuted copy).

- The conv pass (centred depthwise conv + SiLU, and optionally each row's projection, the mixer's ``x_proj``,
  while the row is in cache) is independent per scan position, so it runs in parallel over tiles of
  positions; the backward reduces the weight gradients per worker (static partition, so the result is
  deterministic).
- The summed conv pass (the mixer's gate branch: every direction's conv + SiLU added up) reads each row's taps
  in every direction from one tile of rows, so ``x`` is read and the sum written once for all directions.
- The scan pass (softplus, discretisation, recurrence, ``D`` skip) is sequential along each sequence, so it
  runs in parallel over (sequence, channel block) work items; every block keeps its states in a small
  ``(n, width)`` buffer. The backward recomputes the states of its items into ``hs (L, n, d)`` and runs the
  adjoint scan; ``dB``/``dC`` are reduced over the channels of a block into per-block partials.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from pc3d.kernels._prefetch import PREFETCH_AHEAD, prefetch, prefetch_row
from pc3d.kernels.scan.numba_cpu import _exp2, _like, _scan_start, _scan_step, _sigmoid, _softplus

__all__ = [
    "channel_blocks",
    "conv_backward",
    "conv_forward",
    "conv_sum_forward",
    "scan_backward",
    "scan_forward",
]

_TILE = 256  # scan positions per conv work item


def channel_blocks(dim: int, n_seq: int, threads: int) -> int:
    """Channel blocks per sequence for the scan: enough items for every thread, blocks of >= 8 channels."""
    want = max(1, -(-threads // max(n_seq, 1)))
    return max(1, min(want, dim // 8 if dim >= 16 else 1))


# ----------------------------------------------------------------------------- conv + SiLU


@njit(cache=True)
def _tiles(offsets):
    """Work items of the conv: ``(start, end)`` scan-position ranges of at most ``_TILE`` inside one sequence."""
    count = 0
    for seg in range(offsets.shape[0] - 1):
        count += (offsets[seg + 1] - offsets[seg] + _TILE - 1) // _TILE
    items = np.empty((count, 4), dtype=np.int64)  # q0, q1, sequence start, sequence end
    j = 0
    for seg in range(offsets.shape[0] - 1):
        s0 = offsets[seg]
        s1 = offsets[seg + 1]
        for q0 in range(s0, s1, _TILE):
            items[j, 0] = q0
            items[j, 1] = min(q0 + _TILE, s1)
            items[j, 2] = s0
            items[j, 3] = s1
            j += 1
    return items


@njit(inline="always")
def _conv_taps(x, wt, pi, q, s0, s1, acc):
    """``acc (c,) = sum_j wt[j] * x[pi[q - left + j]]`` over the taps at scan positions inside ``[s0, s1)``;
    ``wt (k, c)``, ``left = (k - 1) // 2``."""
    left = (wt.shape[0] - 1) // 2
    for ch in range(acc.shape[0]):
        acc[ch] = 0
    for j in range(wt.shape[0]):
        qq = q - left + j
        if s0 <= qq < s1:
            xr = x[pi[qq]]
            wr = wt[j]
            for ch in range(acc.shape[0]):
                acc[ch] += wr[ch] * xr[ch]


@njit(inline="always")
def _project_row(orow, wp, prow):
    """``prow (m,) = wp (m, c) @ orow (c,)``: a row's projection while the row is still in cache (four
    outputs per pass over the row)."""
    m = wp.shape[0]
    o = 0
    while o + 4 <= m:
        w0, w1, w2, w3 = wp[o], wp[o + 1], wp[o + 2], wp[o + 3]
        s0 = s1 = s2 = s3 = _like(0.0, orow[0])
        for ch in range(orow.shape[0]):
            v = orow[ch]
            s0 += w0[ch] * v
            s1 += w1[ch] * v
            s2 += w2[ch] * v
            s3 += w3[ch] * v
        prow[o], prow[o + 1], prow[o + 2], prow[o + 3] = s0, s1, s2, s3
        o += 4
    for last in range(o, m):
        wr = wp[last]
        s = _like(0.0, orow[0])
        for ch in range(orow.shape[0]):
            s += wr[ch] * orow[ch]
        prow[last] = s


@njit(parallel=True, fastmath=True, cache=True)
def _conv_fwd_kernel(x, wt, pi, items, acc_from, wp, proj, out):
    """x, out (L, c); wt (k, c); ``out[pi[q]] = silu(sum_j wt[j] * x[pi[q - left + j]])`` within the sequence.

    Channels ``>= acc_from`` are added to ``out`` instead of overwriting it. ``proj (L, m) = out @ wp.T`` for
    ``wp (m, c)`` (``m = 0``: no projection).
    """
    nch = x.shape[1]
    for it in prange(items.shape[0]):
        q0, q1, s0, s1 = items[it, 0], items[it, 1], items[it, 2], items[it, 3]
        acc = np.empty(nch, dtype=x.dtype)
        for q in range(q0, q1):
            _conv_taps(x, wt, pi, q, s0, s1, acc)
            orow = out[pi[q]]
            for ch in range(acc_from):
                v = acc[ch]
                orow[ch] = v * _sigmoid(v)
            for ch in range(acc_from, nch):
                v = acc[ch]
                orow[ch] += v * _sigmoid(v)
            _project_row(orow, wp, proj[pi[q]])


@njit(inline="always")
def _add_projection_grad(dr, dp, wp, out):
    """``out (c,) = dr + wp.T @ dp``: a row's output gradient plus what flows back through its projection
    (``dp (m,)``, ``wp (m, c)``)."""
    for ch in range(out.shape[0]):
        out[ch] = dr[ch]
    for o in range(wp.shape[0]):
        a = dp[o]
        wr = wp[o]
        for ch in range(out.shape[0]):
            out[ch] += a * wr[ch]


@njit(inline="always")
def _accumulate_projection_weight_grad(dp, yrow, dwp):
    """``dwp (m, c) += outer(dp (m,), yrow (c,))``."""
    for o in range(dwp.shape[0]):
        a = dp[o]
        dr = dwp[o]
        for ch in range(yrow.shape[0]):
            dr[ch] += a * yrow[ch]


@njit(parallel=True, fastmath=True, cache=True)
def _conv_bwd_grad_kernel(x, wt, pi, items, dout, wp, dproj, g, dw_part, dwp_part):
    """g (L, c) = (dout + dproj @ wp) * silu'(pre-activation); dw_part (workers, k, c) and dwp_part
    (workers, m, c) per-worker gradients of the conv weight and of the projection ``wp (m, c)`` (``m = 0``: no
    projection)."""
    nch = x.shape[1]
    k = wt.shape[0]
    left = (k - 1) // 2
    nwork = dw_part.shape[0]
    nitems = items.shape[0]
    for w in prange(nwork):
        acc = np.empty(nch, dtype=x.dtype)
        dsum = np.empty(nch, dtype=x.dtype)
        yrow = np.empty(nch, dtype=x.dtype)
        dw = dw_part[w]
        for it in range(w * nitems // nwork, (w + 1) * nitems // nwork):
            q0, q1, s0, s1 = items[it, 0], items[it, 1], items[it, 2], items[it, 3]
            for q in range(q0, q1):
                _conv_taps(x, wt, pi, q, s0, s1, acc)
                t = pi[q]
                gr = g[t]
                dr = dout[t]
                if wp.shape[0] == 0:
                    for ch in range(nch):
                        v = acc[ch]
                        sg = _sigmoid(v)
                        gr[ch] = dr[ch] * sg * (1 + v * (1 - sg))
                else:
                    _add_projection_grad(dr, dproj[t], wp, dsum)
                    for ch in range(nch):
                        v = acc[ch]
                        sg = _sigmoid(v)
                        gr[ch] = dsum[ch] * sg * (1 + v * (1 - sg))
                        yrow[ch] = v * sg
                    _accumulate_projection_weight_grad(dproj[t], yrow, dwp_part[w])
                for j in range(k):
                    qq = q - left + j
                    if s0 <= qq < s1:
                        xr = x[pi[qq]]
                        dwr = dw[j]
                        for ch in range(nch):
                            dwr[ch] += gr[ch] * xr[ch]


@njit(parallel=True, fastmath=True, cache=True)
def _conv_bwd_input_kernel(wt, pi, items, g, accumulate, dx):
    """dx[pi[q]] (+)= sum_j wt[j] * g[pi[q + left - j]] over the taps inside the sequence."""
    nch = g.shape[1]
    k = wt.shape[0]
    left = (k - 1) // 2
    for it in prange(items.shape[0]):
        q0, q1, s0, s1 = items[it, 0], items[it, 1], items[it, 2], items[it, 3]
        for q in range(q0, q1):
            dr = dx[pi[q]]
            if not accumulate:
                for ch in range(nch):
                    dr[ch] = 0
            for j in range(k):
                qq = q + left - j
                if s0 <= qq < s1:
                    gr = g[pi[qq]]
                    wr = wt[j]
                    for ch in range(nch):
                        dr[ch] += wr[ch] * gr[ch]


# Convs of up to ``_WINDOW`` taps read the rows at scan positions q-1 .. q+2 (a centred conv's taps, zero-padded
# to the window): one loop over the channels per row does all the taps and the SiLU, with no accumulator.
_WINDOW = 4


def _window_weight(weight_t: np.ndarray) -> np.ndarray | None:
    """``(..., k, c)`` taps at offsets ``j - (k-1)//2`` as ``(..., 4, c)`` at offsets -1..2; None if ``k > 4``."""
    k = weight_t.shape[-2]
    if k > _WINDOW:
        return None
    w4 = np.zeros(weight_t.shape[:-2] + (_WINDOW, weight_t.shape[-1]), dtype=weight_t.dtype)
    first = 1 - (k - 1) // 2
    w4[..., first : first + k, :] = weight_t
    return w4


@njit(inline="always")
def _window_rows(x, pi, q, s0, s1, zero):
    """The rows at scan positions ``q-1 .. q+2`` (``zero`` outside ``[s0, s1)``)."""
    x0 = x[pi[q - 1]] if q - 1 >= s0 else zero
    x2 = x[pi[q + 1]] if q + 1 < s1 else zero
    x3 = x[pi[q + 2]] if q + 2 < s1 else zero
    return x0, x[pi[q]], x2, x3


@njit(parallel=True, fastmath=True, cache=True)
def _conv_window_fwd_kernel(x, w4, pi, items, acc_from, wp, proj, out):
    """:func:`_conv_fwd_kernel` for ``w4 (4, c)``: taps at scan offsets -1..2."""
    nch = x.shape[1]
    w0, w1, w2, w3 = w4[0], w4[1], w4[2], w4[3]
    for it in prange(items.shape[0]):
        q0, q1, s0, s1 = items[it, 0], items[it, 1], items[it, 2], items[it, 3]
        zero = np.zeros(nch, dtype=x.dtype)
        for q in range(q0, q1):
            if q + PREFETCH_AHEAD + 2 < s1:
                prefetch_row(x, pi[q + PREFETCH_AHEAD + 2], 0, nch)
                prefetch_row(out, pi[q + PREFETCH_AHEAD], 0, nch)
            x0, x1, x2, x3 = _window_rows(x, pi, q, s0, s1, zero)
            orow = out[pi[q]]
            for ch in range(acc_from):
                v = w0[ch] * x0[ch] + w1[ch] * x1[ch] + w2[ch] * x2[ch] + w3[ch] * x3[ch]
                orow[ch] = v * _sigmoid(v)
            for ch in range(acc_from, nch):
                v = w0[ch] * x0[ch] + w1[ch] * x1[ch] + w2[ch] * x2[ch] + w3[ch] * x3[ch]
                orow[ch] += v * _sigmoid(v)
            _project_row(orow, wp, proj[pi[q]])


def conv_forward(
    x: np.ndarray,
    weight_t: np.ndarray,
    offsets: np.ndarray,
    pi: np.ndarray,
    out: np.ndarray,
    acc_from: int,
    proj_weight: np.ndarray | None = None,
    proj: np.ndarray | None = None,
) -> None:
    """``x, out (L, c)``, ``weight_t (k, c)``, ``offsets (S+1,)``, ``pi (L,)`` scan positions -> ``out``; with
    ``proj_weight (m, c)`` also ``proj (L, m) = out @ proj_weight.T``, each row projected as it is written."""
    if proj_weight is None:
        proj_weight = np.empty((0, x.shape[1]), dtype=x.dtype)
        proj = np.empty((x.shape[0], 0), dtype=x.dtype)
    w4 = _window_weight(weight_t)
    if w4 is None:
        _conv_fwd_kernel(x, weight_t, pi, _tiles(offsets), acc_from, proj_weight, proj, out)
    else:
        _conv_window_fwd_kernel(x, w4, pi, _tiles(offsets), acc_from, proj_weight, proj, out)


@njit(parallel=True, fastmath=True, cache=True)
def _conv_window_bwd_grad_kernel(x, w4, pi, items, dout, wp, dproj, g, dw_part, dwp_part):
    """:func:`_conv_bwd_grad_kernel` for ``w4 (4, c)``: taps at scan offsets -1..2."""
    nch = x.shape[1]
    w0, w1, w2, w3 = w4[0], w4[1], w4[2], w4[3]
    nwork = dw_part.shape[0]
    nitems = items.shape[0]
    for w in prange(nwork):
        zero = np.zeros(nch, dtype=x.dtype)
        dsum = np.empty(nch, dtype=x.dtype)
        yrow = np.empty(nch, dtype=x.dtype)
        d0, d1, d2, d3 = dw_part[w, 0], dw_part[w, 1], dw_part[w, 2], dw_part[w, 3]
        for it in range(w * nitems // nwork, (w + 1) * nitems // nwork):
            q0, q1, s0, s1 = items[it, 0], items[it, 1], items[it, 2], items[it, 3]
            for q in range(q0, q1):
                if q + PREFETCH_AHEAD + 2 < s1:
                    prefetch_row(x, pi[q + PREFETCH_AHEAD + 2], 0, nch)
                    prefetch_row(dout, pi[q + PREFETCH_AHEAD], 0, nch)
                    prefetch_row(g, pi[q + PREFETCH_AHEAD], 0, nch)
                x0, x1, x2, x3 = _window_rows(x, pi, q, s0, s1, zero)
                t = pi[q]
                gr = g[t]
                dr = dout[t]
                if wp.shape[0] == 0:
                    for ch in range(nch):
                        v = w0[ch] * x0[ch] + w1[ch] * x1[ch] + w2[ch] * x2[ch] + w3[ch] * x3[ch]
                        sg = _sigmoid(v)
                        gr[ch] = dr[ch] * sg * (1 + v * (1 - sg))
                else:
                    _add_projection_grad(dr, dproj[t], wp, dsum)
                    for ch in range(nch):
                        v = w0[ch] * x0[ch] + w1[ch] * x1[ch] + w2[ch] * x2[ch] + w3[ch] * x3[ch]
                        sg = _sigmoid(v)
                        gr[ch] = dsum[ch] * sg * (1 + v * (1 - sg))
                        yrow[ch] = v * sg
                    _accumulate_projection_weight_grad(dproj[t], yrow, dwp_part[w])
                # one loop per tap: a loop that touches every array at once does not vectorise
                for ch in range(nch):
                    d0[ch] += gr[ch] * x0[ch]
                for ch in range(nch):
                    d1[ch] += gr[ch] * x1[ch]
                for ch in range(nch):
                    d2[ch] += gr[ch] * x2[ch]
                for ch in range(nch):
                    d3[ch] += gr[ch] * x3[ch]


@njit(parallel=True, fastmath=True, cache=True)
def _conv_window_bwd_input_kernel(w4, pi, items, g, accumulate, dx):
    """``dx[pi[q]] (+)= w4[0] g[pi[q+1]] + w4[1] g[pi[q]] + w4[2] g[pi[q-1]] + w4[3] g[pi[q-2]]`` inside the
    sequence."""
    nch = g.shape[1]
    w0, w1, w2, w3 = w4[0], w4[1], w4[2], w4[3]
    for it in prange(items.shape[0]):
        q0, q1, s0, s1 = items[it, 0], items[it, 1], items[it, 2], items[it, 3]
        zero = np.zeros(nch, dtype=g.dtype)
        for q in range(q0, q1):
            if q + PREFETCH_AHEAD + 1 < s1:
                prefetch_row(g, pi[q + PREFETCH_AHEAD + 1], 0, nch)
                prefetch_row(dx, pi[q + PREFETCH_AHEAD], 0, nch)
            g0 = g[pi[q + 1]] if q + 1 < s1 else zero
            g2 = g[pi[q - 1]] if q - 1 >= s0 else zero
            g3 = g[pi[q - 2]] if q - 2 >= s0 else zero
            g1 = g[pi[q]]
            dr = dx[pi[q]]
            if accumulate:
                for ch in range(nch):
                    dr[ch] += w0[ch] * g0[ch] + w1[ch] * g1[ch] + w2[ch] * g2[ch] + w3[ch] * g3[ch]
            else:
                for ch in range(nch):
                    dr[ch] = w0[ch] * g0[ch] + w1[ch] * g1[ch] + w2[ch] * g2[ch] + w3[ch] * g3[ch]


def conv_backward(
    x: np.ndarray,
    weight_t: np.ndarray,
    offsets: np.ndarray,
    pi: np.ndarray,
    dout: np.ndarray,
    proj_weight: np.ndarray | None = None,
    dproj: np.ndarray | None = None,
    dx: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients ``(dx (L, c), dweight_t (k, c), dproj_weight (m, c))`` of :func:`conv_forward` (``acc_from = c``)
    given ``dout (L, c)`` and, with ``proj_weight (m, c)``, the projection's ``dproj (L, m)``; ``m = 0`` without.
    A given ``dx`` buffer gets the input gradient added (several convs of one input, summed).
    """
    if proj_weight is None:
        proj_weight = np.empty((0, x.shape[1]), dtype=x.dtype)
        dproj = np.empty((x.shape[0], 0), dtype=x.dtype)
    items = _tiles(offsets)
    workers = max(1, min(numba.get_num_threads(), items.shape[0]))
    g = np.empty_like(x)
    accumulate = dx is not None
    if dx is None:
        dx = np.empty_like(x)
    dwp_part = np.zeros((workers,) + proj_weight.shape, dtype=x.dtype)
    w4 = _window_weight(weight_t)
    if w4 is None:
        dw_part = np.zeros((workers,) + weight_t.shape, dtype=x.dtype)
        _conv_bwd_grad_kernel(x, weight_t, pi, items, dout, proj_weight, dproj, g, dw_part, dwp_part)
        _conv_bwd_input_kernel(weight_t, pi, items, g, accumulate, dx)
        return dx, dw_part.sum(0), dwp_part.sum(0)
    dw_part = np.zeros((workers,) + w4.shape, dtype=x.dtype)
    _conv_window_bwd_grad_kernel(x, w4, pi, items, dout, proj_weight, dproj, g, dw_part, dwp_part)
    _conv_window_bwd_input_kernel(w4, pi, items, g, accumulate, dx)
    k = weight_t.shape[0]
    first = 1 - (k - 1) // 2
    return dx, dw_part.sum(0)[first : first + k], dwp_part.sum(0)


@njit(parallel=True, fastmath=True, cache=True)
def _conv_sum_fwd_kernel(x, wt, pis, qinv, items, out):
    """x, out (L, c); wt (nd, k, c); pis, qinv (nd, L) every direction's scan positions and their inverse.

    ``out[t] = sum_k silu(sum_j wt[k, j] * x[pis[k, qinv[k, t] - left + j]])`` over the taps inside the sequence.
    """
    nd = wt.shape[0]
    nch = x.shape[1]
    for it in prange(items.shape[0]):
        t0, t1, s0, s1 = items[it, 0], items[it, 1], items[it, 2], items[it, 3]
        acc = np.empty(nch, dtype=x.dtype)
        tot = np.empty(nch, dtype=x.dtype)
        for t in range(t0, t1):
            for ch in range(nch):
                tot[ch] = 0
            for dk in range(nd):
                _conv_taps(x, wt[dk], pis[dk], qinv[dk, t], s0, s1, acc)
                for ch in range(nch):
                    v = acc[ch]
                    tot[ch] += v * _sigmoid(v)
            orow = out[t]
            for ch in range(nch):
                orow[ch] = tot[ch]


@njit(parallel=True, fastmath=True, cache=True)
def _conv_sum_window_fwd_kernel(x, w4, pis, qinv, items, out):
    """:func:`_conv_sum_fwd_kernel` for ``w4 (nd, 4, c)``: taps at scan offsets -1..2."""
    nd = w4.shape[0]
    nch = x.shape[1]
    for it in prange(items.shape[0]):
        t0, t1, s0, s1 = items[it, 0], items[it, 1], items[it, 2], items[it, 3]
        zero = np.zeros(nch, dtype=x.dtype)
        for t in range(t0, t1):
            orow = out[t]
            for dk in range(nd):
                x0, x1, x2, x3 = _window_rows(x, pis[dk], qinv[dk, t], s0, s1, zero)
                w0, w1, w2, w3 = w4[dk, 0], w4[dk, 1], w4[dk, 2], w4[dk, 3]
                if dk == 0:
                    for ch in range(nch):
                        v = w0[ch] * x0[ch] + w1[ch] * x1[ch] + w2[ch] * x2[ch] + w3[ch] * x3[ch]
                        orow[ch] = v * _sigmoid(v)
                else:
                    for ch in range(nch):
                        v = w0[ch] * x0[ch] + w1[ch] * x1[ch] + w2[ch] * x2[ch] + w3[ch] * x3[ch]
                        orow[ch] += v * _sigmoid(v)


def conv_sum_forward(
    x: np.ndarray,
    weight_t: np.ndarray,
    offsets: np.ndarray,
    pis: np.ndarray,
    qinv: np.ndarray,
    out: np.ndarray,
) -> None:
    """``x, out (L, c)``, ``weight_t (nd, k, c)``, ``offsets (S+1,)``, ``pis, qinv (nd, L)`` -> ``out``: every
    direction's conv + SiLU summed, in one pass over row tiles (one read of ``x``, one write of ``out``)."""
    w4 = _window_weight(weight_t)
    if w4 is None:
        _conv_sum_fwd_kernel(x, weight_t, pis, qinv, _tiles(offsets), out)
    else:
        _conv_sum_window_fwd_kernel(x, w4, pis, qinv, _tiles(offsets), out)


# ----------------------------------------------------------------------------- selective scan


@njit(inline="always")
def _block_width(dim, nblk):
    """Channels per scan work item: an even split of ``dim`` in ``nblk`` blocks, rounded up to whole 16-lane
    vectors when every block still gets one (a ragged tail in every row costs more than an uneven split)."""
    cb = (dim + nblk - 1) // nblk
    return (cb + 15) // 16 * 16 if dim >= 16 * nblk else cb


@njit(parallel=True, fastmath=True, cache=True)
def _scan_fwd_kernel(u, u0, delta, A2t, B, C, Dv, bias, offsets, reverse, stride, nblk, accumulate, out):
    """u (L, >= u0 + d) holds the inputs in columns ``u0 ..``; delta, out (L, d); A2t = (A·log2e)^T (n, d); B, C (L, n); Dv, bias (d,).

    ``out[t] (+)= C_t·h_t + D·u_t`` with ``h_t = exp2(Δ_t·A2) h_prev + Δ_t·B_t·u_t``, ``Δ = softplus(δ + bias)``.
    """
    dim = delta.shape[1]
    n = A2t.shape[0]
    nseg = offsets.shape[0] - 1
    cb = _block_width(dim, nblk)
    for item in prange(nseg * nblk):
        seg = item // nblk
        c0 = (item - seg * nblk) * cb
        c1 = min(dim, c0 + cb)
        s0 = offsets[seg]
        length = offsets[seg + 1] - s0
        if c1 <= c0 or length == 0:
            continue
        w = c1 - c0
        h = np.zeros((n, w), dtype=delta.dtype)
        dl = np.empty(w, dtype=delta.dtype)
        acc = np.empty(w, dtype=delta.dtype)
        a2 = A2t[:, c0:c1]
        bb = bias[c0:c1]
        dd = Dv[c0:c1]
        i, r = _scan_start(0, length, stride, reverse)
        for _ in range(length):
            t = s0 + i
            ur = u[t, u0 + c0 : u0 + c1]
            dr = delta[t, c0:c1]
            for c in range(w):
                dl[c] = _softplus(dr[c] + bb[c])
                acc[c] = dd[c] * ur[c]
            for kk in range(n):
                bt = B[t, kk]
                ct = C[t, kk]
                hk = h[kk]
                ak = a2[kk]
                for c in range(w):
                    v = _exp2(dl[c] * ak[c]) * hk[c] + dl[c] * ur[c] * bt
                    hk[c] = v
                    acc[c] += v * ct
            orow = out[t, c0:c1]
            if accumulate:
                for c in range(w):
                    orow[c] += acc[c]
            else:
                for c in range(w):
                    orow[c] = acc[c]
            i, r = _scan_step(i, r, length, stride, reverse)


@njit(parallel=True, fastmath=True, cache=True)
def _scan_fwd_kernel_n1(u, u0, delta, par, B, C, offsets, reverse, stride, nblk, accumulate, out):
    """:func:`_scan_fwd_kernel` for ``n == 1``: ``par (3, d)`` = (bias, A·log2e, D); ``B, C (L, 1)``.

    One loop over the channels of a row does all the work. It indexes row slices from 0 (so no
    negative-index fix-ups) and touches few distinct arrays (so LLVM's runtime alias checks stay within
    budget): the loop vectorises.
    """
    dim = delta.shape[1]
    nseg = offsets.shape[0] - 1
    cb = _block_width(dim, nblk)
    for item in prange(nseg * nblk):
        seg = item // nblk
        c0 = (item - seg * nblk) * cb
        c1 = min(dim, c0 + cb)
        s0 = offsets[seg]
        length = offsets[seg + 1] - s0
        if c1 <= c0 or length == 0:
            continue
        w = c1 - c0
        h = np.zeros(w, dtype=delta.dtype)
        b0 = par[0, c0:c1]
        a2 = par[1, c0:c1]
        dd = par[2, c0:c1]
        i, r = _scan_start(0, length, stride, reverse)
        ia, ra = _scan_start(min(PREFETCH_AHEAD, length - 1), length, stride, reverse)
        for p in range(length):
            if p + PREFETCH_AHEAD < length:
                ta = s0 + ia
                prefetch_row(u, ta, u0 + c0, u0 + c1)
                prefetch_row(delta, ta, c0, c1)
                prefetch_row(out, ta, c0, c1)
                ia, ra = _scan_step(ia, ra, length, stride, reverse)
            t = s0 + i
            bt = B[t, 0]
            ct = C[t, 0]
            ur = u[t, u0 + c0 : u0 + c1]
            dr = delta[t, c0:c1]
            orow = out[t, c0:c1]
            if accumulate:
                for c in range(w):
                    dl = _softplus(dr[c] + b0[c])
                    uu = ur[c]
                    v = _exp2(dl * a2[c]) * h[c] + dl * uu * bt
                    h[c] = v
                    orow[c] += v * ct + dd[c] * uu
            else:
                for c in range(w):
                    dl = _softplus(dr[c] + b0[c])
                    uu = ur[c]
                    v = _exp2(dl * a2[c]) * h[c] + dl * uu * bt
                    h[c] = v
                    orow[c] = v * ct + dd[c] * uu
            i, r = _scan_step(i, r, length, stride, reverse)


@njit(inline="always")
def _low(low, t, j):
    """``low[t, j]``, 0 past the last column (the projection's rank is padded to a multiple of 4)."""
    return low[t, j] if j < low.shape[1] else _like(0.0, low[t, 0])


@njit(parallel=True, fastmath=True, cache=True)
def _scan_fwd_kernel_n1_proj(u, u0, low, prm, B, C, offsets, reverse, stride, nblk, accumulate, out):
    """:func:`_scan_fwd_kernel_n1` with ``δ = low @ WT`` formed row by row (``low (L, r)``, ``WT (r, d)``: the
    mixer's ``dt_proj``), so the ``(L, d)`` ``δ`` is never stored.

    ``prm (3 + r4, d)`` = (bias, A·log2e, D, the rows of ``WT`` zero-padded to ``r4``, a multiple of 4). The first
    4 rank terms are summed inside the scan's channel loop; the others, in groups of 4, first go to a row buffer:
    a rank-2 or rank-4 projection costs no extra loop per row (the loop overhead dominated narrow rows).
    """
    dim = out.shape[1]
    groups = (prm.shape[0] - 3) // 4
    nseg = offsets.shape[0] - 1
    cb = _block_width(dim, nblk)
    for item in prange(nseg * nblk):
        seg = item // nblk
        c0 = (item - seg * nblk) * cb
        c1 = min(dim, c0 + cb)
        s0 = offsets[seg]
        length = offsets[seg + 1] - s0
        if c1 <= c0 or length == 0:
            continue
        w = c1 - c0
        h = np.zeros(w, dtype=out.dtype)
        pr = np.ascontiguousarray(prm[:, c0:c1])  # one array for all parameters: the loops vectorise
        rest = pr[0].copy()  # the bias plus the rank terms past the first 4
        i, r = _scan_start(0, length, stride, reverse)
        ia, ra = _scan_start(min(PREFETCH_AHEAD, length - 1), length, stride, reverse)
        for p in range(length):
            if p + PREFETCH_AHEAD < length:
                ta = s0 + ia
                prefetch_row(u, ta, u0 + c0, u0 + c1)
                prefetch_row(out, ta, c0, c1)
                prefetch(low, ta, 0)
                ia, ra = _scan_step(ia, ra, length, stride, reverse)
            t = s0 + i
            bt = B[t, 0]
            ct = C[t, 0]
            ur = u[t, u0 + c0 : u0 + c1]
            orow = out[t, c0:c1]
            for g in range(1, groups):
                k = 3 + 4 * g
                la, lb = _low(low, t, 4 * g), _low(low, t, 4 * g + 1)
                lc, ld = _low(low, t, 4 * g + 2), _low(low, t, 4 * g + 3)
                if g == 1:
                    for c in range(w):
                        rest[c] = (
                            pr[0, c]
                            + la * pr[k, c]
                            + lb * pr[k + 1, c]
                            + lc * pr[k + 2, c]
                            + ld * pr[k + 3, c]
                        )
                else:
                    for c in range(w):
                        rest[c] += la * pr[k, c] + lb * pr[k + 1, c] + lc * pr[k + 2, c] + ld * pr[k + 3, c]
            l0, l1, l2, l3 = _low(low, t, 0), _low(low, t, 1), _low(low, t, 2), _low(low, t, 3)
            if accumulate:
                for c in range(w):
                    dl = _softplus(rest[c] + l0 * pr[3, c] + l1 * pr[4, c] + l2 * pr[5, c] + l3 * pr[6, c])
                    uu = ur[c]
                    v = _exp2(dl * pr[1, c]) * h[c] + dl * uu * bt
                    h[c] = v
                    orow[c] += v * ct + pr[2, c] * uu
            else:
                for c in range(w):
                    dl = _softplus(rest[c] + l0 * pr[3, c] + l1 * pr[4, c] + l2 * pr[5, c] + l3 * pr[6, c])
                    uu = ur[c]
                    v = _exp2(dl * pr[1, c]) * h[c] + dl * uu * bt
                    h[c] = v
                    orow[c] = v * ct + pr[2, c] * uu
            i, r = _scan_step(i, r, length, stride, reverse)


@njit(parallel=True, fastmath=True, cache=True)
def _scan_bwd_kernel_n1(
    u, u0, delta, par, B, C, offsets, reverse, stride, nblk, dout,
    hs, du, ddelta, dB_part, dC_part, acc_part,
):  # fmt: skip
    """:func:`_scan_bwd_kernel` for ``n == 1``: ``par (4, d)`` = (bias, A·log2e, A, D); hs (L, d);
    dB_part, dC_part (nblk, L); acc_part (S, 4, d) = per-sequence (unused, dD, dbias, dA).

    Every channel loop writes at most two arrays and reads few others (LLVM's runtime alias checks stay
    within budget, so each loop vectorises); per-step temporaries live in ``tmp (5, width)``.
    """
    dim = delta.shape[1]
    nseg = offsets.shape[0] - 1
    cb = _block_width(dim, nblk)
    for item in prange(nseg * nblk):
        seg = item // nblk
        blk = item - seg * nblk
        c0 = blk * cb
        c1 = min(dim, c0 + cb)
        s0 = offsets[seg]
        length = offsets[seg + 1] - s0
        if c1 <= c0:
            continue
        w = c1 - c0
        acc = np.zeros((4, w), dtype=delta.dtype)  # rows: λ (carried), dD, dbias, dA
        if length == 0:
            acc_part[seg, :, c0:c1] = acc
            continue
        prm = np.ascontiguousarray(par[:, c0:c1])  # contiguous rows: the channel loops vectorise
        tmp = np.empty((5, w), dtype=delta.dtype)  # Δ, a, λ + dy·C, a·h_prev·(λ + dy·C), σ(δ + bias)
        h = np.zeros(w, dtype=delta.dtype)
        zero = np.zeros(w, dtype=delta.dtype)
        i, r = _scan_start(0, length, stride, reverse)
        ia, ra = _scan_start(min(PREFETCH_AHEAD, length - 1), length, stride, reverse)
        for p in range(length):  # recompute the states
            if p + PREFETCH_AHEAD < length:
                ta = s0 + ia
                prefetch_row(u, ta, u0 + c0, u0 + c1)
                prefetch_row(delta, ta, c0, c1)
                prefetch_row(hs, ta, c0, c1)
                ia, ra = _scan_step(ia, ra, length, stride, reverse)
            t = s0 + i
            bt = B[t, 0]
            ur = u[t, u0 + c0 : u0 + c1]
            dr = delta[t, c0:c1]
            hr = hs[t, c0:c1]
            for c in range(w):
                dl = _softplus(dr[c] + prm[0, c])
                v = _exp2(dl * prm[1, c]) * h[c] + dl * ur[c] * bt
                h[c] = v
                hr[c] = v
            i, r = _scan_step(i, r, length, stride, reverse)
        i, r = _scan_start(length - 1, length, stride, reverse)
        ia, ra = _scan_start(max(length - 1 - PREFETCH_AHEAD, 0), length, stride, reverse)
        for p in range(length - 1, -1, -1):  # adjoint scan, last scan position first
            if p >= PREFETCH_AHEAD:
                ta = s0 + ia
                prefetch_row(u, ta, u0 + c0, u0 + c1)
                prefetch_row(delta, ta, c0, c1)
                prefetch_row(dout, ta, c0, c1)
                prefetch_row(hs, ta, c0, c1)
                prefetch_row(du, ta, c0, c1)
                prefetch_row(ddelta, ta, c0, c1)
                ia, ra = _scan_step(ia, ra, length, stride, not reverse)
            t = s0 + i
            ip, rp = i, r
            hp = zero
            if p > 0:
                ip, rp = _scan_step(i, r, length, stride, not reverse)
                hp = hs[s0 + ip, c0:c1]
            bt = B[t, 0]
            ct = C[t, 0]
            ur = u[t, u0 + c0 : u0 + c1]
            dr = delta[t, c0:c1]
            gr = dout[t, c0:c1]
            ht = hs[t, c0:c1]
            sdb = _like(0.0, bt)
            sdc = _like(0.0, bt)
            for c in range(w):
                x = dr[c] + prm[0, c]
                dl = _softplus(x)
                a = _exp2(dl * prm[1, c])
                lk = acc[0, c] + gr[c] * ct
                tmp[0, c] = dl
                tmp[1, c] = a
                tmp[2, c] = lk
                tmp[3, c] = a * hp[c] * lk
                tmp[4, c] = _sigmoid(x)
                sdc += gr[c] * ht[c]
                sdb += lk * dl * ur[c]
            dB_part[blk, t] = sdb
            dC_part[blk, t] = sdc
            dur = du[t, c0:c1]
            for c in range(w):
                dur[c] = prm[3, c] * gr[c] + tmp[0, c] * tmp[2, c] * bt
            ddr = ddelta[t, c0:c1]
            for c in range(w):
                ddr[c] = (ur[c] * tmp[2, c] * bt + prm[2, c] * tmp[3, c]) * tmp[4, c]
            for c in range(w):
                acc[0, c] = tmp[1, c] * tmp[2, c]
                acc[1, c] += gr[c] * ur[c]
                acc[2, c] += (ur[c] * tmp[2, c] * bt + prm[2, c] * tmp[3, c]) * tmp[4, c]
                acc[3, c] += tmp[0, c] * tmp[3, c]
            i, r = ip, rp
        acc_part[seg, :, c0:c1] = acc


@njit(parallel=True, fastmath=True, cache=True)
def _scan_bwd_kernel(
    u, u0, delta, At, A2t, B, C, Dv, bias, offsets, reverse, stride, nblk, dout,
    hs, du, ddelta, dB_part, dC_part, dA_part, dD_part, dbias_part,
):  # fmt: skip
    """Adjoint scan. hs (L, n, d) scratch for the states; du, ddelta (L, d); dB_part, dC_part (nblk, L, n);
    dA_part (S, n, d); dD_part, dbias_part (S, d)."""
    dim = delta.shape[1]
    n = A2t.shape[0]
    nseg = offsets.shape[0] - 1
    cb = _block_width(dim, nblk)
    for item in prange(nseg * nblk):
        seg = item // nblk
        blk = item - seg * nblk
        c0 = blk * cb
        c1 = min(dim, c0 + cb)
        s0 = offsets[seg]
        length = offsets[seg + 1] - s0
        if c1 <= c0:
            continue
        w = c1 - c0
        a2 = A2t[:, c0:c1]
        ad = At[:, c0:c1]
        bb = bias[c0:c1]
        dd = Dv[c0:c1]
        dl = np.empty(w, dtype=delta.dtype)
        dy = np.empty(w, dtype=u.dtype)
        slb = np.empty(w, dtype=u.dtype)
        sda = np.empty(w, dtype=u.dtype)
        lam = np.zeros((n, w), dtype=u.dtype)
        h = np.zeros((n, w), dtype=u.dtype)
        zero = np.zeros((n, dim), dtype=u.dtype)
        dA = dA_part[seg, :, c0:c1]
        dDr = dD_part[seg, c0:c1]
        dbr = dbias_part[seg, c0:c1]
        for c in range(w):
            dDr[c] = 0
            dbr[c] = 0
        for kk in range(n):
            for c in range(w):
                dA[kk, c] = 0
        if length == 0:
            continue
        i, r = _scan_start(0, length, stride, reverse)
        for _ in range(length):  # recompute the states
            t = s0 + i
            ur = u[t, u0 + c0 : u0 + c1]
            dr = delta[t, c0:c1]
            for c in range(w):
                dl[c] = _softplus(dr[c] + bb[c])
            for kk in range(n):
                bt = B[t, kk]
                hk = h[kk]
                ak = a2[kk]
                hsr = hs[t, kk, c0:c1]
                for c in range(w):
                    v = _exp2(dl[c] * ak[c]) * hk[c] + dl[c] * ur[c] * bt
                    hk[c] = v
                    hsr[c] = v
            i, r = _scan_step(i, r, length, stride, reverse)
        i, r = _scan_start(length - 1, length, stride, reverse)
        for p in range(length - 1, -1, -1):  # adjoint scan, last scan position first
            t = s0 + i
            ip, rp = i, r
            if p > 0:
                ip, rp = _scan_step(i, r, length, stride, not reverse)
                hprev = hs[s0 + ip]
            else:
                hprev = zero
            ur = u[t, u0 + c0 : u0 + c1]
            dr = delta[t, c0:c1]
            gr = dout[t, c0:c1]
            for c in range(w):
                x = dr[c] + bb[c]
                dl[c] = _softplus(x)
                dy[c] = gr[c]
                dDr[c] += gr[c] * ur[c]
                slb[c] = 0
                sda[c] = 0
            for kk in range(n):
                bt = B[t, kk]
                ct = C[t, kk]
                lk_row = lam[kk]
                ak = a2[kk]
                af = ad[kk]
                hp = hprev[kk, c0:c1]
                ht = hs[t, kk, c0:c1]
                dAk = dA[kk]
                sdb = _like(0.0, bt)
                sdc = _like(0.0, bt)
                for c in range(w):
                    a = _exp2(dl[c] * ak[c])
                    lk = lk_row[c] + dy[c] * ct
                    x = a * hp[c] * lk
                    sdc += dy[c] * ht[c]
                    sdb += lk * dl[c] * ur[c]
                    slb[c] += lk * bt
                    sda[c] += af[c] * x
                    dAk[c] += dl[c] * x
                    lk_row[c] = a * lk
                dB_part[blk, t, kk] = sdb
                dC_part[blk, t, kk] = sdc
            dur = du[t, c0:c1]
            ddr = ddelta[t, c0:c1]
            for c in range(w):
                dur[c] = dd[c] * dy[c] + dl[c] * slb[c]
                ddl = (ur[c] * slb[c] + sda[c]) * _sigmoid(dr[c] + bb[c])
                ddr[c] = ddl
                dbr[c] += ddl
            i, r = ip, rp


def scan_forward(
    u: np.ndarray, u0: int, delta: np.ndarray, A: np.ndarray, B: np.ndarray, C: np.ndarray, D: np.ndarray,
    bias: np.ndarray, offsets: np.ndarray, reverse: bool, stride: int, out: np.ndarray, accumulate: bool,
) -> None:  # fmt: skip
    """``u (L, >= u0 + d)`` (columns ``u0 ..``), ``delta, out (L, d)``, ``A (d, n)``, ``B, C (L, n)``, ``D, bias (d,)``, ``offsets (S+1,)`` -> ``out``."""
    log2e = np.asarray(1.4426950408889634, dtype=np.float64)
    A2t = np.ascontiguousarray((A.astype(np.float64) * log2e).astype(u.dtype).T)
    nblk = channel_blocks(delta.shape[1], len(offsets) - 1, numba.get_num_threads())
    if A.shape[1] == 1:
        par = np.ascontiguousarray(np.stack([bias, A2t[0], D]))
        _scan_fwd_kernel_n1(u, u0, delta, par, B, C, offsets, reverse, stride, nblk, accumulate, out)
        return
    _scan_fwd_kernel(u, u0, delta, A2t, B, C, D, bias, offsets, reverse, stride, nblk, accumulate, out)


def scan_backward(
    u: np.ndarray, u0: int, delta: np.ndarray, A: np.ndarray, B: np.ndarray, C: np.ndarray, D: np.ndarray,
    bias: np.ndarray, offsets: np.ndarray, reverse: bool, stride: int, dout: np.ndarray,
) -> tuple[np.ndarray, ...]:  # fmt: skip
    """Gradients ``(du, ddelta (L, d), dA (d, n), dB, dC (L, n), dD, dbias (d,))`` of :func:`scan_forward`."""
    length, dim = delta.shape
    n = A.shape[1]
    nseg = len(offsets) - 1
    nblk = channel_blocks(dim, nseg, numba.get_num_threads())
    log2e = np.asarray(1.4426950408889634, dtype=np.float64)
    A2t = np.ascontiguousarray((A.astype(np.float64) * log2e).astype(u.dtype).T)
    At = np.ascontiguousarray(A.T.astype(u.dtype))
    if n == 1:
        return _scan_backward_n1(u, u0, delta, A, B, C, D, bias, offsets, reverse, stride, dout, nblk)
    hs = np.empty((length, n, dim), dtype=u.dtype)
    du = np.empty_like(delta)
    ddelta = np.empty_like(delta)
    dB_part = np.zeros((nblk, length, n), dtype=u.dtype)
    dC_part = np.zeros((nblk, length, n), dtype=u.dtype)
    dA_part = np.empty((nseg, n, dim), dtype=u.dtype)
    dD_part = np.empty((nseg, dim), dtype=u.dtype)
    dbias_part = np.empty((nseg, dim), dtype=u.dtype)
    _scan_bwd_kernel(
        u, u0, delta, At, A2t, B, C, D, bias, offsets, reverse, stride, nblk, dout,
        hs, du, ddelta, dB_part, dC_part, dA_part, dD_part, dbias_part,
    )  # fmt: skip
    return (
        du,
        ddelta,
        np.ascontiguousarray(dA_part.sum(0).T),
        dB_part.sum(0),
        dC_part.sum(0),
        dD_part.sum(0),
        dbias_part.sum(0),
    )


def _scan_backward_n1(u, u0, delta, A, B, C, D, bias, offsets, reverse, stride, dout, nblk):
    length, dim = delta.shape
    nseg = len(offsets) - 1
    a = A[:, 0].astype(delta.dtype)
    a2 = (A[:, 0].astype(np.float64) * 1.4426950408889634).astype(delta.dtype)
    par = np.ascontiguousarray(np.stack([bias, a2, a, D]))
    hs = np.empty((length, dim), dtype=delta.dtype)
    du = np.empty_like(delta)
    ddelta = np.empty_like(delta)
    dB_part = np.zeros((nblk, length), dtype=delta.dtype)
    dC_part = np.zeros((nblk, length), dtype=delta.dtype)
    acc_part = np.empty((nseg, 4, dim), dtype=delta.dtype)
    _scan_bwd_kernel_n1(
        u,
        u0,
        delta,
        par,
        B,
        C,
        offsets,
        reverse,
        stride,
        nblk,
        dout,
        hs,
        du,
        ddelta,
        dB_part,
        dC_part,
        acc_part,
    )
    acc = acc_part.sum(0)
    return (
        du,
        ddelta,
        acc[3][:, None].copy(),
        dB_part.sum(0)[:, None],
        dC_part.sum(0)[:, None],
        acc[1],
        acc[2],
    )


def scan_forward_proj(
    u: np.ndarray, u0: int, low: np.ndarray, proj: np.ndarray, A: np.ndarray, B: np.ndarray, C: np.ndarray,
    D: np.ndarray, bias: np.ndarray, offsets: np.ndarray, reverse: bool, stride: int, out: np.ndarray,
    accumulate: bool,
) -> None:  # fmt: skip
    """:func:`scan_forward` with ``delta = low @ proj.T`` (``low (L, r)``, ``proj (d, r)``) for ``n == 1``."""
    a2 = (A[:, 0].astype(np.float64) * 1.4426950408889634).astype(out.dtype)
    rank = proj.shape[1]
    prm = np.zeros((3 + -(-rank // 4) * 4, out.shape[1]), dtype=out.dtype)
    prm[0], prm[1], prm[2] = bias, a2, D
    prm[3 : 3 + rank] = proj.T
    nblk = channel_blocks(out.shape[1], len(offsets) - 1, numba.get_num_threads())
    _scan_fwd_kernel_n1_proj(u, u0, low, prm, B, C, offsets, reverse, stride, nblk, accumulate, out)
