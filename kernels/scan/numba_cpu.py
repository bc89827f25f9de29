"""Numba CPU selective scan: forward and backward, parallel over the ``(b, d)`` rows.

Per step and channel the kernels fuse softplus(δ + bias), the ZOH decay ``a = 2^(Δ·A·log2e)`` (a hand-written
exp2 polynomial in float32: pip's llvmlite has no SVML), the state update, ``C·h``, the ``D`` skip and the
SiLU(z) gate. The scan order (packed sequences, reverse, stride) is index arithmetic on the fly.

Memory: the forward keeps only the states at chunk starts, ``ckpt (b, d, n_chunks, n)`` (one every ``chunk`` scan
steps of each sequence). The backward walks the chunks from last to first, recomputes the states of one chunk
into a small per-row buffer ``(chunk + 1, n)`` and runs the reverse (adjoint) scan through it, so no
``(b, d, L, n)`` tensor ever exists. ``dB``/``dC`` are reductions over the channels of a group: each worker owns
one partial ``(b, g, L, n)`` buffer (static row partition, so the result is deterministic), summed at the end.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch
from numba import njit, prange, types
from numba.extending import intrinsic, overload
from torch import Tensor

__all__ = ["DEFAULT_CHUNK", "scan_backward", "scan_forward"]

DEFAULT_CHUNK = 256
LOG2E = 1.4426950408889634
_LN2 = 0.6931471805599453

# Near-minimax degree-5 polynomial for 2^f on [0, 1) (max rel. error 7.5e-8), fitted with Lawson iterations.
_P0 = np.float32(0.999999925063619)
_P1 = np.float32(0.6931530731948522)
_P2 = np.float32(0.24015361709031224)
_P3 = np.float32(0.055826317917301777)
_P4 = np.float32(0.008989340252568256)
_P5 = np.float32(0.0018775766082128609)
_LO = np.float32(-126.0)
_HI = np.float32(127.0)


@intrinsic
def _bits_to_f32(typingctx, bits):
    """Reinterpret an int32 bit pattern as float32."""
    if bits != types.int32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float32))

    return types.float32(types.int32), codegen


def _exp2(x):  # pragma: no cover - typed through the overload below
    raise TypeError("numba-only helper: usable inside @njit kernels, where its @overload applies")


@overload(_exp2, inline="always")
def _exp2_overload(x):
    if x == types.float32:

        def impl(x):
            # Cody-Waite split: 2^x = 2^k * 2^f with k = floor(x), f in [0, 1); 2^k built from the exponent bits.
            x = min(max(x, _LO), _HI)
            kf = np.floor(x)
            f = x - kf
            poly = _P0 + f * (_P1 + f * (_P2 + f * (_P3 + f * (_P4 + f * _P5))))
            return poly * _bits_to_f32(np.int32((np.int32(kf) + np.int32(127)) << np.int32(23)))

        return impl
    if x == types.float64:
        return lambda x: math.exp(x * _LN2)
    return None


_LOG2E32 = np.float32(LOG2E)


def _exp(x):  # pragma: no cover - typed through the overload below
    raise TypeError("numba-only helper: usable inside @njit kernels, where its @overload applies")


@overload(_exp, inline="always")
def _exp_overload(x):
    """exp through the exp2 polynomial in float32, libm in float64."""
    if x == types.float32:
        return lambda x: _exp2(x * _LOG2E32)
    if x == types.float64:
        return lambda x: math.exp(x)
    return None


def _like(x, ref):  # pragma: no cover - typed through the overload below
    raise TypeError("numba-only helper: usable inside @njit kernels, where its @overload applies")


@overload(_like, inline="always")
def _like_overload(x, ref):
    """Cast ``x`` to the float type of ``ref`` (keeps float32 kernels in float32)."""
    if ref == types.float32:
        return lambda x, ref: np.float32(x)
    return lambda x, ref: np.float64(x)


# Degree-8 fit of log1p(e) / e on [0, 1] (Chebyshev least squares; max rel. error 2.7e-7 in float32).
_L = tuple(
    np.float32(c)
    for c in (
        0.9999999208389256, -0.49999255769801887, 0.3331600902450749, -0.24825638714658016,
        0.19055923573555808, -0.1358388201592139, 0.07753973967915581, -0.029209901335566436,
        0.005185917150566799,
    )
)  # fmt: skip


def _softplus(x):  # pragma: no cover - typed through the overload below
    raise TypeError("numba-only helper: usable inside @njit kernels, where its @overload applies")


@overload(_softplus, inline="always")
def _softplus_overload(x):
    """softplus(x) = max(x, 0) + log1p(exp(-|x|)): branch-free polynomials in float32 (so loops over
    steps vectorise), libm in float64."""
    if x == types.float32:
        l0, l1, l2, l3, l4, l5, l6, l7, l8 = _L

        def impl(x):
            e = _exp(-abs(x))
            poly = l0 + e * (l1 + e * (l2 + e * (l3 + e * (l4 + e * (l5 + e * (l6 + e * (l7 + e * l8)))))))
            return max(x, np.float32(0.0)) + e * poly

        return impl
    if x == types.float64:
        return lambda x: max(x, 0.0) + math.log1p(math.exp(-abs(x)))
    return None


@njit(inline="always", cache=True)
def _sigmoid(x):
    return _like(1.0, x) / (_like(1.0, x) + _exp(-x))


@njit(inline="always", cache=True)
def _strided_index(p, length, stride):
    """Original index of position ``p`` of the strided order and its phase."""
    q = length // stride
    rem = length - q * stride
    long_part = rem * (q + 1)
    if p < long_part:
        r = p // (q + 1)
        k = p - r * (q + 1)
    else:
        pp = p - long_part
        r = rem + pp // q
        k = pp - (r - rem) * q
    return r + stride * k, r


@njit(inline="always", cache=True)
def _scan_start(p, length, stride, reverse):
    """(index, phase) at scan position ``p``; reverse scans the strided sequence backwards."""
    if reverse:
        return _strided_index(length - 1 - p, length, stride)
    return _strided_index(p, length, stride)


@njit(inline="always", cache=True)
def _scan_step(i, r, length, stride, reverse):
    """Advance (index, phase) by one scan position."""
    if reverse:
        i -= stride
        if i < 0:
            r -= 1
            i = r + stride * ((length - 1 - r) // stride)
    else:
        i += stride
        if i >= length:
            r += 1
            i = r
    return i, r


@njit(parallel=True, fastmath=True, cache=True)
def _forward_kernel(
    u,
    delta,
    A2,
    Bt,
    Ct,
    Dv,
    z,
    bias,
    offsets,
    softplus,
    has_z,
    reverse,
    stride,
    chunk,
    ck_base,
    save,
    out,
    last,
    ckpt,
):
    """u, delta, z, out (b, d, L); A2 = A·log2e (d, n); Bt, Ct (b, g, L, n); Dv, bias (d,); last (b, S, d, n);
    ckpt (b, d, n_chunks, n) written only when ``save``."""
    nb, nd, _ = u.shape
    n = A2.shape[1]
    dpg = nd // Bt.shape[1]
    nseg = offsets.shape[0] - 1
    for row in prange(nb * nd):
        b = row // nd
        d = row - b * nd
        g = d // dpg
        a2 = A2[d]
        dd = Dv[d]
        bd = bias[d]
        h = np.zeros_like(a2)
        for seg in range(nseg):
            s0 = offsets[seg]
            length = offsets[seg + 1] - s0
            for k in range(n):
                h[k] = 0.0
            if length > 0:
                i, r = _scan_start(0, length, stride, reverse)
                for p in range(length):
                    if save and p % chunk == 0:
                        c = ck_base[seg] + p // chunk
                        for k in range(n):
                            ckpt[b, d, c, k] = h[k]
                    t = s0 + i
                    dl = delta[b, d, t] + bd
                    if softplus:
                        dl = _softplus(dl)
                    uu = u[b, d, t]
                    dlu = dl * uu
                    bt = Bt[b, g, t]
                    ct = Ct[b, g, t]
                    acc = dd * uu
                    for k in range(n):
                        hk = _exp2(dl * a2[k]) * h[k] + dlu * bt[k]
                        h[k] = hk
                        acc += hk * ct[k]
                    if has_z:
                        zz = z[b, d, t]
                        acc = acc * zz * _sigmoid(zz)
                    out[b, d, t] = acc
                    i, r = _scan_step(i, r, length, stride, reverse)
            for k in range(n):
                last[b, seg, d, k] = h[k]


# Large buffers are page-aligned (mmap), so streams of equal length start at the same offset in a
# 4 KiB page; a store followed by a load 4 KiB apart then stalls (4K aliasing: 2x slower at n = 1).
# Buffers written by the n = 1 kernel start this many elements into their allocation instead.
_SKEW = 272


def _skewed_empty(shape: tuple[int, ...], dtype) -> np.ndarray:
    """``np.empty(shape)`` whose data starts ``_SKEW`` elements into its allocation (see ``_SKEW``)."""
    size = int(np.prod(shape))
    return np.empty(size + _SKEW, dtype=dtype)[_SKEW:].reshape(shape)


@njit(cache=True)
def _skewed_buffers(count, length, dtype):
    """``count`` work buffers ``(length,)`` in one allocation, each starting at a different offset (``_SKEW``)."""
    step = length + _SKEW
    buf = np.empty(count * step + _SKEW, dtype=dtype)
    return [buf[k * step + _SKEW - (k * 37) % _SKEW :][:length] for k in range(count)]


@njit(parallel=True, fastmath=True, cache=True)
def _forward_kernel_n1(
    u, delta, A2, Bt, Ct, Dv, z, bias, offsets, softplus, has_z, reverse, stride, chunk, ck_base, save, out, last,
    ckpt, nwork,
):  # fmt: skip
    """:func:`_forward_kernel` for ``n == 1`` (MEEPO's mixers), in three passes per sequence and row.
    ``Bt, Ct (b, g, L)`` (the state axis dropped, so the rows are contiguous); ``nwork`` workers split
    the rows statically and each allocates its two ``(max sequence length,)`` buffers once.

    The pointwise work (softplus, the decay ``exp2``, ``Δ·u·B``, then ``C·h + D·u`` and the gate)
    runs in memory order, where it vectorises; only ``h = a·h + Δ·u·B`` walks the scan order. With
    one state per channel the single-pass kernel has no inner loop to vectorise, so this is ~2x faster.
    """
    nb, nd, _ = u.shape
    dpg = nd // Bt.shape[1]
    nseg = offsets.shape[0] - 1
    maxlen = 0
    for seg in range(nseg):
        maxlen = max(maxlen, offsets[seg + 1] - offsets[seg])
    nrows = nb * nd
    for w in prange(nwork):  # per-worker buffers, allocated once (not once per row)
        bufs = _skewed_buffers(2, maxlen, A2.dtype)
        abuf = bufs[0]
        xbuf = bufs[1]  # Δ·u·B, then the states h
        for row in range(w * nrows // nwork, (w + 1) * nrows // nwork):
            b = row // nd
            d = row - b * nd
            g = d // dpg
            a2 = A2[d, 0]
            dd = Dv[d]
            bd = bias[d]
            ur = u[b, d]
            dr = delta[b, d]
            br = Bt[b, g]
            cr = Ct[b, g]
            orow = out[b, d]
            for seg in range(nseg):
                s0 = offsets[seg]
                length = offsets[seg + 1] - s0
                if softplus:  # pass 1, memory order (two loops: no branch inside, so both vectorise)
                    for q in range(length):
                        dl = _softplus(dr[s0 + q] + bd)
                        abuf[q] = _exp2(dl * a2)
                        xbuf[q] = dl * ur[s0 + q] * br[s0 + q]
                else:
                    for q in range(length):
                        dl = dr[s0 + q] + bd
                        abuf[q] = _exp2(dl * a2)
                        xbuf[q] = dl * ur[s0 + q] * br[s0 + q]
                h = abuf[0] * 0
                if length > 0:
                    i, r = _scan_start(0, length, stride, reverse)
                    for p in range(length):  # pass 2, scan order
                        if save and p % chunk == 0:
                            ckpt[b, d, ck_base[seg] + p // chunk, 0] = h
                        h = abuf[i] * h + xbuf[i]
                        xbuf[i] = h
                        i, r = _scan_step(i, r, length, stride, reverse)
                last[b, seg, d, 0] = h
                if has_z:  # pass 3, memory order
                    zr = z[b, d]
                    for q in range(length):
                        t = s0 + q
                        zz = zr[t]
                        orow[t] = (cr[t] * xbuf[q] + dd * ur[t]) * zz * _sigmoid(zz)
                else:
                    for q in range(length):
                        t = s0 + q
                        orow[t] = cr[t] * xbuf[q] + dd * ur[t]


@njit(parallel=True, fastmath=True, cache=True)
def _backward_kernel(
    u, delta, A, A2, Bt, Ct, Dv, z, bias, offsets, softplus, has_z, reverse, stride, chunk, ck_base, ckpt,
    dout, dlast, du, ddelta, dz, dA_row, dD_row, dbias_row, dB_part, dC_part,
):  # fmt: skip
    """Adjoint scan. dout (b, d, L); dlast (b, S, d, n); outputs du, ddelta, dz (b, d, L); per-row partials
    dA_row (b, d, n), dD_row, dbias_row (b, d); per-worker partials dB_part, dC_part (workers, b, g, L, n)."""
    nb, nd, _ = u.shape
    n = A2.shape[1]
    dpg = nd // Bt.shape[1]
    nseg = offsets.shape[0] - 1
    nrows = nb * nd
    nwork = dB_part.shape[0]
    for w in prange(nwork):
        hbuf = np.zeros((chunk + 1, n), dtype=A2.dtype)  # hbuf[q + 1] = state after chunk step q
        abuf = np.zeros((chunk, n), dtype=A2.dtype)
        dlbuf = np.zeros(chunk, dtype=A2.dtype)
        tbuf = np.zeros(chunk, dtype=np.int64)
        lam = np.zeros(n, dtype=A2.dtype)
        dAacc = np.zeros(n, dtype=A2.dtype)
        for row in range(w * nrows // nwork, (w + 1) * nrows // nwork):
            b = row // nd
            d = row - b * nd
            g = d // dpg
            a2 = A2[d]
            ad = A[d]
            dd = Dv[d]
            bd = bias[d]
            dD = 0.0
            dbias = 0.0
            for k in range(n):
                dAacc[k] = 0.0
            dBp = dB_part[w, b, g]
            dCp = dC_part[w, b, g]
            for seg in range(nseg):
                s0 = offsets[seg]
                length = offsets[seg + 1] - s0
                # lam carries a_{t+1} * λ_{t+1}; the gradient of the final state seeds it.
                for k in range(n):
                    lam[k] = dlast[b, seg, d, k]
                nchunks = (length + chunk - 1) // chunk
                for c in range(nchunks - 1, -1, -1):
                    p0 = c * chunk
                    steps = min(chunk, length - p0)
                    for k in range(n):
                        hbuf[0, k] = ckpt[b, d, ck_base[seg] + c, k]
                    i, r = _scan_start(p0, length, stride, reverse)
                    for q in range(steps):  # recompute the states of this chunk
                        t = s0 + i
                        dl = delta[b, d, t] + bd
                        if softplus:
                            dl = _softplus(dl)
                        dlu = dl * u[b, d, t]
                        bt = Bt[b, g, t]
                        for k in range(n):
                            a = _exp2(dl * a2[k])
                            abuf[q, k] = a
                            hbuf[q + 1, k] = a * hbuf[q, k] + dlu * bt[k]
                        dlbuf[q] = dl
                        tbuf[q] = t
                        i, r = _scan_step(i, r, length, stride, reverse)
                    for q in range(steps - 1, -1, -1):  # reverse scan
                        t = tbuf[q]
                        dl = dlbuf[q]
                        uu = u[b, d, t]
                        g_out = dout[b, d, t]
                        bt = Bt[b, g, t]
                        ct = Ct[b, g, t]
                        if has_z:
                            y = dd * uu
                            for k in range(n):
                                y += ct[k] * hbuf[q + 1, k]
                            zz = z[b, d, t]
                            sg = _sigmoid(zz)
                            dz[b, d, t] = g_out * y * sg * (1.0 + zz * (1.0 - sg))
                            dy = g_out * zz * sg
                        else:
                            dy = g_out
                        dD += dy * uu
                        dlu = dl * uu
                        sum_lb = _like(0.0, dl)
                        sum_da = _like(0.0, dl)
                        for k in range(n):
                            lk = lam[k] + dy * ct[k]
                            x = abuf[q, k] * hbuf[q, k] * lk  # a_t h_{t-1} λ_t
                            dCp[t, k] += dy * hbuf[q + 1, k]
                            dBp[t, k] += lk * dlu
                            sum_lb += lk * bt[k]
                            sum_da += ad[k] * x
                            dAacc[k] += dl * x
                            lam[k] = abuf[q, k] * lk
                        du[b, d, t] = dd * dy + dl * sum_lb
                        ddl = uu * sum_lb + sum_da
                        if softplus:
                            ddl = ddl * _sigmoid(delta[b, d, t] + bd)
                        ddelta[b, d, t] = ddl
                        dbias += ddl
            for k in range(n):
                dA_row[b, d, k] = dAacc[k]
            dD_row[b, d] = dD
            dbias_row[b, d] = dbias


@njit(parallel=True, fastmath=True, cache=True)
def _backward_kernel_n1(
    u, delta, A, A2, Bt, Ct, Dv, z, bias, offsets, softplus, has_z, reverse, stride, dout, dlast,
    du, ddelta, dz, dA_row, dD_row, dbias_row, dB_part, dC_part,
):  # fmt: skip
    """:func:`_backward_kernel` for ``n == 1``: ``Bt, Ct (b, g, L)``, ``dB_part, dC_part (workers, b, g, L)``.

    Per sequence and row, the states are recomputed from the sequence start (no checkpoints needed)
    and only the two recurrences walk the scan order (``h = a·h + Δ·u·B`` forwards, then
    ``λ = a·(λ + dy·C)`` backwards); everything pointwise runs in vectorised memory-order passes.
    """
    nb, nd, _ = u.shape
    dpg = nd // Bt.shape[1]
    nseg = offsets.shape[0] - 1
    nrows = nb * nd
    nwork = dB_part.shape[0]
    maxlen = 0
    for seg in range(nseg):
        maxlen = max(maxlen, offsets[seg + 1] - offsets[seg])
    for w in prange(nwork):
        bufs = _skewed_buffers(7, maxlen, A2.dtype)
        abuf = bufs[0]  # decay a
        hbuf = bufs[1]  # Δ·u·B, then the states h
        ahbuf = bufs[2]  # a · h_prev
        dybuf = bufs[3]  # dL/dy
        lkbuf = bufs[4]  # λ_t + dy·C
        dlbuf = bufs[5]  # Δ
        sbuf = bufs[6]  # dΔ/dδ: sigmoid(δ + bias) with softplus, else 1
        for row in range(w * nrows // nwork, (w + 1) * nrows // nwork):
            b = row // nd
            d = row - b * nd
            g = d // dpg
            a2 = A2[d, 0]
            ad = A[d, 0]
            dd = Dv[d]
            bd = bias[d]
            ur = u[b, d]
            dr = delta[b, d]
            gr = dout[b, d]
            br = Bt[b, g]
            cr = Ct[b, g]
            dBp = dB_part[w, b, g]
            dCp = dC_part[w, b, g]
            dur = du[b, d]
            ddr = ddelta[b, d]
            dD = _like(0.0, a2)
            dbias = _like(0.0, a2)
            dAacc = _like(0.0, a2)
            for seg in range(nseg):
                s0 = offsets[seg]
                length = offsets[seg + 1] - s0
                if length == 0:
                    continue
                if softplus:  # pass 1: Δ, dΔ/dδ, decay and Δ·u·B, memory order
                    for q in range(length):
                        x = dr[s0 + q] + bd
                        dlbuf[q] = _softplus(x)
                        sbuf[q] = _sigmoid(x)
                else:
                    for q in range(length):
                        dlbuf[q] = dr[s0 + q] + bd
                        sbuf[q] = 1.0
                for q in range(length):
                    dl = dlbuf[q]
                    abuf[q] = _exp2(dl * a2)
                    hbuf[q] = dl * ur[s0 + q] * br[s0 + q]
                h = abuf[0] * 0
                i, r = _scan_start(0, length, stride, reverse)
                for _ in range(length):  # pass 2: states, scan order
                    ah = abuf[i] * h
                    ahbuf[i] = ah
                    h = ah + hbuf[i]
                    hbuf[i] = h
                    i, r = _scan_step(i, r, length, stride, reverse)
                if has_z:  # pass 3: dy (and dz), dC, dD, memory order
                    zr = z[b, d]
                    dzr = dz[b, d]
                    for q in range(length):
                        t = s0 + q
                        zz = zr[t]
                        sg = _sigmoid(zz)
                        y = cr[t] * hbuf[q] + dd * ur[t]
                        dzr[t] = gr[t] * y * sg * (1.0 + zz * (1.0 - sg))
                        dybuf[q] = gr[t] * zz * sg
                else:
                    for q in range(length):
                        dybuf[q] = gr[s0 + q]
                for q in range(length):
                    t = s0 + q
                    dCp[t] += dybuf[q] * hbuf[q]
                    dD += dybuf[q] * ur[t]
                lam = dlast[b, seg, d, 0]
                i, r = _scan_start(length - 1, length, stride, reverse)
                for _ in range(length):  # pass 4: adjoint states, reverse scan order
                    lk = lam + dybuf[i] * cr[s0 + i]
                    lkbuf[i] = lk
                    lam = abuf[i] * lk
                    i, r = _scan_step(i, r, length, stride, not reverse)  # one scan position back
                for q in range(length):  # pass 5: input gradients, memory order
                    t = s0 + q
                    dl = dlbuf[q]
                    lk = lkbuf[q]
                    uu = ur[t]
                    sum_lb = lk * br[t]
                    xa = ahbuf[q] * lk
                    dBp[t] += lk * dl * uu
                    dur[t] = dd * dybuf[q] + dl * sum_lb
                    ddl = uu * sum_lb + ad * xa
                    dAacc += dl * xa
                    ddl = ddl * sbuf[q]
                    ddr[t] = ddl
                    dbias += ddl
            dA_row[b, d, 0] = dAacc
            dD_row[b, d] = dD
            dbias_row[b, d] = dbias


def _chunk_bases(offsets: np.ndarray, chunk: int) -> tuple[np.ndarray, int]:
    """First checkpoint slot of every sequence and the total number of slots."""
    lengths = np.diff(offsets)
    counts = (lengths + chunk - 1) // chunk
    base = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(counts[:-1], out=base[1:])
    return base, int(counts.sum())


_NP_DTYPE = {torch.float32: np.float32, torch.float64: np.float64}


def _np(t: Tensor | None, ct: torch.dtype, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Contiguous numpy view (copy only when the dtype or layout differ); zeros of ``shape`` for None.

    Conversions use numpy where possible: torch's OpenMP pool would fight numba's for the cores.
    """
    if t is None:
        return np.zeros(shape, dtype=_NP_DTYPE[ct])
    t = t.detach()
    if t.dtype != ct:
        t = t.to(ct)
    return np.ascontiguousarray(t.numpy())


def _bc_layout(X: Tensor, ct: torch.dtype) -> np.ndarray:
    """B or C ``(b, n, L)`` / ``(b, g, n, L)`` -> contiguous ``(b, g, L, n)`` (rows of n per step)."""
    if X.dim() == 3:
        X = X.unsqueeze(1)
    X = X.detach()
    if X.dtype != ct:
        X = X.to(ct)
    return np.ascontiguousarray(X.numpy().swapaxes(-1, -2))


@njit(cache=True)
def _reduce_workers(part, out):
    """out (b, g, n, L) = sum over workers of part (workers, b, g, L, n)."""
    nw, nb, ng, length, n = part.shape
    for b in range(nb):
        for g in range(ng):
            for t in range(length):
                for k in range(n):
                    acc = part[0, b, g, t, k]
                    for w in range(1, nw):
                        acc += part[w, b, g, t, k]
                    out[b, g, k, t] = acc


def _compute_dtype(u: Tensor) -> torch.dtype:
    return torch.float64 if u.dtype == torch.float64 else torch.float32


def _to(a: np.ndarray, like: Tensor) -> Tensor:
    t = torch.from_numpy(a)
    return t if t.dtype == like.dtype else t.to(like.dtype)


def scan_forward(
    u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None, z: Tensor | None,
    delta_bias: Tensor | None, softplus: bool, offsets: Tensor, reverse: bool, stride: int, save: bool,
    chunk: int | None = None,
) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """Forward on CPU tensors. ``offsets (S+1,)`` int64 (``[0, L]`` when not packed).

    Returns ``out (b, d, L)`` in ``u``'s dtype, ``last (b, S, d, n)`` and ``ckpt (b, d, n_chunks, n)`` in the
    compute dtype (an empty tensor when ``save`` is False).
    """
    chunk = chunk or DEFAULT_CHUNK
    ct = _compute_dtype(u)
    bsz, dim, length = u.shape
    n = A.shape[1]
    npt = _NP_DTYPE[ct]
    offs = np.ascontiguousarray(offsets.detach().numpy().astype(np.int64))
    ck_base, n_chunks = _chunk_bases(offs, chunk)
    out = _skewed_empty((bsz, dim, length), npt)
    last = np.empty((bsz, len(offs) - 1, dim, n), dtype=npt)
    ckpt = np.empty((bsz, dim, n_chunks, n) if save else (1, 1, 1, n), dtype=npt)
    A2 = (_np(A, torch.float64) * LOG2E).astype(npt)
    Bt, Ct = _bc_layout(B, ct), _bc_layout(C, ct)
    args = (
        _np(u, ct), _np(delta, ct), A2, Bt, Ct, _np(D, ct, (dim,)),
        _np(z, ct, (1, 1, 1)), _np(delta_bias, ct, (dim,)), offs, bool(softplus), z is not None, bool(reverse),
        int(stride), int(chunk), ck_base, bool(save), out, last, ckpt,
    )  # fmt: skip
    if n == 1:
        Bt, Ct = np.ascontiguousarray(Bt[..., 0]), np.ascontiguousarray(Ct[..., 0])
        _forward_kernel_n1(*args[:3], Bt, Ct, *args[5:], max(1, min(numba.get_num_threads(), bsz * dim)))
    else:
        _forward_kernel(*args)
    return _to(out, u), torch.from_numpy(last), torch.from_numpy(ckpt if save else ckpt[:0])


def scan_backward(
    u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None, z: Tensor | None,
    delta_bias: Tensor | None, softplus: bool, offsets: Tensor, reverse: bool, stride: int, ckpt: Tensor,
    dout: Tensor, dlast: Tensor | None, chunk: int | None = None,
) -> tuple[Tensor, ...]:  # fmt: skip
    """Gradients ``(du, ddelta, dA, dB, dC, dD, dz, ddelta_bias)`` in the dtypes of the matching inputs
    (``None`` for absent optional inputs). ``dout (b, d, L)``; ``dlast (b, S, d, n)`` or None."""
    chunk = chunk or DEFAULT_CHUNK
    ct = _compute_dtype(u)
    bsz, dim, length = u.shape
    n = A.shape[1]
    groups = 1 if B.dim() == 3 else B.shape[1]
    npt = _NP_DTYPE[ct]
    offs = np.ascontiguousarray(offsets.detach().numpy().astype(np.int64))
    nseg = len(offs) - 1
    ck_base, _ = _chunk_bases(offs, chunk)
    workers = max(1, min(numba.get_num_threads(), bsz * dim))
    du = np.empty((bsz, dim, length), dtype=npt)
    ddelta = np.empty((bsz, dim, length), dtype=npt)
    dz = np.empty((bsz, dim, length) if z is not None else (1, 1, 1), dtype=npt)
    dA_row = np.empty((bsz, dim, n), dtype=npt)
    dD_row = np.empty((bsz, dim), dtype=npt)
    dbias_row = np.empty((bsz, dim), dtype=npt)
    dB_part = np.zeros((workers, bsz, groups, length, n), dtype=npt)
    dC_part = np.zeros((workers, bsz, groups, length, n), dtype=npt)
    dl = _np(dlast, ct, (bsz, nseg, dim, n))
    A2 = (_np(A, torch.float64) * LOG2E).astype(npt)
    Bt, Ct = _bc_layout(B, ct), _bc_layout(C, ct)
    common = (
        _np(u, ct), _np(delta, ct), _np(A, ct), A2, Bt, Ct, _np(D, ct, (dim,)), _np(z, ct, (1, 1, 1)),
        _np(delta_bias, ct, (dim,)), offs, bool(softplus), z is not None, bool(reverse), int(stride),
    )  # fmt: skip
    grads = (du, ddelta, dz, dA_row, dD_row, dbias_row)
    if n == 1:
        Bt, Ct = np.ascontiguousarray(Bt[..., 0]), np.ascontiguousarray(Ct[..., 0])
        _backward_kernel_n1(
            *common[:4], Bt, Ct, *common[6:], _np(dout, ct), dl, *grads, dB_part[..., 0], dC_part[..., 0]
        )
    else:
        _backward_kernel(
            *common, int(chunk), ck_base, _np(ckpt, ct), _np(dout, ct), dl, *grads, dB_part, dC_part
        )
    dB = np.empty((bsz, groups, n, length), dtype=npt)
    dC = np.empty((bsz, groups, n, length), dtype=npt)
    _reduce_workers(dB_part, dB)
    _reduce_workers(dC_part, dC)
    if B.dim() == 3:
        dB, dC = dB[:, 0], dC[:, 0]
    return (
        _to(du, u),
        _to(ddelta, delta),
        _to(dA_row.sum(0), A),
        _to(dB, B),
        _to(dC, C),
        _to(dD_row.sum(0), D) if D is not None else None,
        _to(dz, z) if z is not None else None,
        _to(dbias_row.sum(0), delta_bias) if delta_bias is not None else None,
    )
