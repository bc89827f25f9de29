"""Triton kernels of the token-major mixer ops (see :mod:`pc3d.kernels.scan.fused_triton` for the design).

Imported lazily: ``triton.jit`` chooses compiled vs interpreted (``TRITON_INTERPRET=1``) at first import.
"""

import triton
import triton.language as tl

from pc3d.kernels.scan._triton_kernels import _step, _strided_index


@triton.jit
def _conv_taps(
    x_ptr, w_ptr, pi_ptr, seg_ptr, q, qmask, chans, cmask, length, nch,
    K: tl.constexpr, BLOCK_L: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    """Pre-activation ``(BLOCK_L, BLOCK_C)`` of the centred conv at scan positions ``q``."""
    left = (K - 1) // 2
    seg_q = tl.load(seg_ptr + q, mask=qmask, other=-1)
    acc = tl.zeros((BLOCK_L, BLOCK_C), dtype=tl.float32)
    for j in tl.static_range(K):
        qq = q - left + j
        inside = qmask & (qq >= 0) & (qq < length)
        seg_t = tl.load(seg_ptr + qq, mask=inside, other=-2)
        ok = inside & (seg_t == seg_q)
        rows = tl.load(pi_ptr + qq, mask=ok, other=0).to(tl.int64)
        xv = tl.load(
            x_ptr + rows[:, None] * nch + chans[None, :], mask=ok[:, None] & cmask[None, :], other=0.0
        )
        wv = tl.load(w_ptr + j * nch + chans, mask=cmask, other=0.0)
        acc += xv.to(tl.float32) * wv[None, :].to(tl.float32)
    return acc


@triton.jit
def _conv_fwd_kernel(
    x_ptr, w_ptr, pi_ptr, seg_ptr, out_ptr, length, nch, add_from,
    K: tl.constexpr, BLOCK_L: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    q = tl.program_id(0) * BLOCK_L + tl.arange(0, BLOCK_L)
    chans = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    qmask = q < length
    cmask = chans < nch
    acc = _conv_taps(x_ptr, w_ptr, pi_ptr, seg_ptr, q, qmask, chans, cmask, length, nch, K, BLOCK_L, BLOCK_C)
    y = acc * tl.sigmoid(acc)
    rows = tl.load(pi_ptr + q, mask=qmask, other=0).to(tl.int64)
    ptrs = out_ptr + rows[:, None] * nch + chans[None, :]
    m = qmask[:, None] & cmask[None, :]
    add = (chans >= add_from)[None, :]
    prev = tl.load(ptrs, mask=m & add, other=0.0)
    tl.store(ptrs, (y + prev).to(out_ptr.dtype.element_ty), mask=m)


@triton.jit
def _conv_bwd_grad_kernel(
    x_ptr, w_ptr, pi_ptr, seg_ptr, dout_ptr, g_ptr, dw_ptr, length, nch,
    K: tl.constexpr, BLOCK_L: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    """g = dout * silu'(pre); dw_part[pid_l, j, c] = sum over the block's positions of g * x at tap j."""
    pid_l = tl.program_id(0)
    q = pid_l * BLOCK_L + tl.arange(0, BLOCK_L)
    chans = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    qmask = q < length
    cmask = chans < nch
    m = qmask[:, None] & cmask[None, :]
    acc = _conv_taps(x_ptr, w_ptr, pi_ptr, seg_ptr, q, qmask, chans, cmask, length, nch, K, BLOCK_L, BLOCK_C)
    rows = tl.load(pi_ptr + q, mask=qmask, other=0).to(tl.int64)
    dout = tl.load(dout_ptr + rows[:, None] * nch + chans[None, :], mask=m, other=0.0)
    sg = tl.sigmoid(acc)
    g = tl.where(m, dout * sg * (1.0 + acc * (1.0 - sg)), 0.0)
    tl.store(g_ptr + rows[:, None] * nch + chans[None, :], g.to(g_ptr.dtype.element_ty), mask=m)
    left = (K - 1) // 2
    seg_q = tl.load(seg_ptr + q, mask=qmask, other=-1)
    for j in tl.static_range(K):
        qq = q - left + j
        inside = qmask & (qq >= 0) & (qq < length)
        seg_t = tl.load(seg_ptr + qq, mask=inside, other=-2)
        ok = inside & (seg_t == seg_q)
        rt = tl.load(pi_ptr + qq, mask=ok, other=0).to(tl.int64)
        xv = tl.load(x_ptr + rt[:, None] * nch + chans[None, :], mask=ok[:, None] & cmask[None, :], other=0.0)
        dwj = tl.sum(g * xv, axis=0)
        tl.store(dw_ptr + (pid_l * K + j).to(tl.int64) * nch + chans, dwj, mask=cmask)


@triton.jit
def _conv_bwd_input_kernel(
    w_ptr, pi_ptr, seg_ptr, g_ptr, dx_ptr, length, nch,
    K: tl.constexpr, BLOCK_L: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    q = tl.program_id(0) * BLOCK_L + tl.arange(0, BLOCK_L)
    chans = tl.program_id(1) * BLOCK_C + tl.arange(0, BLOCK_C)
    qmask = q < length
    cmask = chans < nch
    left = (K - 1) // 2
    seg_q = tl.load(seg_ptr + q, mask=qmask, other=-1)
    acc = tl.zeros((BLOCK_L, BLOCK_C), dtype=tl.float32)
    for j in tl.static_range(K):
        qq = q + left - j
        inside = qmask & (qq >= 0) & (qq < length)
        seg_t = tl.load(seg_ptr + qq, mask=inside, other=-2)
        ok = inside & (seg_t == seg_q)
        rt = tl.load(pi_ptr + qq, mask=ok, other=0).to(tl.int64)
        gv = tl.load(g_ptr + rt[:, None] * nch + chans[None, :], mask=ok[:, None] & cmask[None, :], other=0.0)
        wv = tl.load(w_ptr + j * nch + chans, mask=cmask, other=0.0)
        acc += gv.to(tl.float32) * wv[None, :].to(tl.float32)
    rows = tl.load(pi_ptr + q, mask=qmask, other=0).to(tl.int64)
    m = qmask[:, None] & cmask[None, :]
    tl.store(dx_ptr + rows[:, None] * nch + chans[None, :], acc.to(dx_ptr.dtype.element_ty), mask=m)


@triton.jit
def _softplus(x):
    return tl.where(x <= 20.0, tl.log(1.0 + tl.exp(x)), x)


@triton.jit
def _scan_fwd_kernel(
    u_ptr, u_stride, delta_ptr, a2_ptr, b_ptr, c_ptr, dskip_ptr, bias_ptr, offs_ptr, out_ptr,
    dim, n, stride, ACCUMULATE: tl.constexpr, REVERSE: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    """One program: BLOCK_D channels of one sequence; rows ``t`` are token-major (channels contiguous)."""
    dims = tl.program_id(0) * BLOCK_D + tl.arange(0, BLOCK_D)
    seg = tl.program_id(1)
    ns = tl.arange(0, BLOCK_N)
    dmask = dims < dim
    nmask = ns < n
    m2 = nmask[:, None] & dmask[None, :]
    a2 = tl.load(a2_ptr + ns[:, None] * dim + dims[None, :], mask=m2, other=0.0)  # (BLOCK_N, BLOCK_D)
    dsk = tl.load(dskip_ptr + dims, mask=dmask, other=0.0)
    bias = tl.load(bias_ptr + dims, mask=dmask, other=0.0)
    s0 = tl.load(offs_ptr + seg)
    seq_len = (tl.load(offs_ptr + seg + 1) - s0).to(tl.int32)
    h = tl.zeros((BLOCK_N, BLOCK_D), dtype=a2.dtype)
    start = 0
    if REVERSE:
        start = seq_len - 1
    i, r = _strided_index(start, seq_len, stride)
    for _ in range(0, seq_len):
        t = (s0 + i).to(tl.int64)
        dl = _softplus(tl.load(delta_ptr + t * dim + dims, mask=dmask, other=0.0) + bias)
        uu = tl.load(u_ptr + t * u_stride + dims, mask=dmask, other=0.0)
        bt = tl.load(b_ptr + t * n + ns, mask=nmask, other=0.0)
        ct = tl.load(c_ptr + t * n + ns, mask=nmask, other=0.0)
        h = tl.exp2(dl[None, :] * a2) * h + (dl * uu)[None, :] * bt[:, None]
        y = tl.sum(h * ct[:, None], axis=0) + dsk * uu
        optr = out_ptr + t * dim + dims
        if ACCUMULATE:
            y += tl.load(optr, mask=dmask, other=0.0)
        tl.store(optr, y, mask=dmask)
        i, r = _step(i, r, seq_len, stride, REVERSE)


@triton.jit
def _scan_bwd_kernel(
    u_ptr, u_stride, delta_ptr, a_ptr, a2_ptr, b_ptr, c_ptr, dskip_ptr, bias_ptr, offs_ptr, dout_ptr, hs_ptr,
    du_ptr, ddelta_ptr, db_ptr, dc_ptr, da_ptr, dd_ptr, dbias_ptr, dim, length, n, stride,
    REVERSE: tl.constexpr, BACK: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    """Adjoint scan: states recomputed into hs (L, n, d), then walked backwards. db, dc (n_dblocks, L, n)
    partials per channel block; da (S, n, d), dd and dbias (S, d) per sequence."""
    pid_d = tl.program_id(0)
    dims = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    seg = tl.program_id(1)
    ns = tl.arange(0, BLOCK_N)
    dmask = dims < dim
    nmask = ns < n
    m2 = nmask[:, None] & dmask[None, :]
    tile = ns[:, None] * dim + dims[None, :]
    a2 = tl.load(a2_ptr + tile, mask=m2, other=0.0)
    af = tl.load(a_ptr + tile, mask=m2, other=0.0)
    dsk = tl.load(dskip_ptr + dims, mask=dmask, other=0.0)
    bias = tl.load(bias_ptr + dims, mask=dmask, other=0.0)
    s0 = tl.load(offs_ptr + seg)
    seq_len = (tl.load(offs_ptr + seg + 1) - s0).to(tl.int32)
    h = tl.zeros((BLOCK_N, BLOCK_D), dtype=a2.dtype)
    start = 0
    if REVERSE:
        start = seq_len - 1
    i, r = _strided_index(start, seq_len, stride)
    for _ in range(0, seq_len):  # recompute the states
        t = (s0 + i).to(tl.int64)
        dl = _softplus(tl.load(delta_ptr + t * dim + dims, mask=dmask, other=0.0) + bias)
        uu = tl.load(u_ptr + t * u_stride + dims, mask=dmask, other=0.0)
        bt = tl.load(b_ptr + t * n + ns, mask=nmask, other=0.0)
        h = tl.exp2(dl[None, :] * a2) * h + (dl * uu)[None, :] * bt[:, None]
        tl.store(hs_ptr + t * n * dim + tile, h, mask=m2)
        i, r = _step(i, r, seq_len, stride, REVERSE)
    lam = tl.zeros((BLOCK_N, BLOCK_D), dtype=a2.dtype)
    da_acc = tl.zeros((BLOCK_N, BLOCK_D), dtype=a2.dtype)
    dd_acc = tl.zeros((BLOCK_D,), dtype=a2.dtype)
    dbias_acc = tl.zeros((BLOCK_D,), dtype=a2.dtype)
    end = seq_len - 1
    if REVERSE:
        end = 0
    i, r = _strided_index(end, seq_len, stride)
    for pp in range(0, seq_len):  # adjoint scan from the last scan position
        p = seq_len - 1 - pp
        t = (s0 + i).to(tl.int64)
        ip, rp = _step(i, r, seq_len, stride, BACK)
        tp = (s0 + tl.minimum(tl.maximum(ip, 0), seq_len - 1)).to(tl.int64)  # in range also at p == 0
        h_prev = tl.load(hs_ptr + tp * n * dim + tile, mask=m2, other=0.0)
        h_prev = tl.where(p > 0, h_prev, 0.0)
        h_t = tl.load(hs_ptr + t * n * dim + tile, mask=m2, other=0.0)
        x = tl.load(delta_ptr + t * dim + dims, mask=dmask, other=0.0) + bias
        dl = _softplus(x)
        uu = tl.load(u_ptr + t * u_stride + dims, mask=dmask, other=0.0)
        dy = tl.load(dout_ptr + t * dim + dims, mask=dmask, other=0.0)
        bt = tl.load(b_ptr + t * n + ns, mask=nmask, other=0.0)
        ct = tl.load(c_ptr + t * n + ns, mask=nmask, other=0.0)
        dd_acc += dy * uu
        a = tl.exp2(dl[None, :] * a2)
        lk = tl.where(m2, lam + dy[None, :] * ct[:, None], 0.0)
        xa = a * h_prev * lk
        tl.store(dc_ptr + (pid_d * length + t) * n + ns, tl.sum(dy[None, :] * h_t, axis=1), mask=nmask)
        tl.store(db_ptr + (pid_d * length + t) * n + ns, tl.sum(lk * (dl * uu)[None, :], axis=1), mask=nmask)
        sum_lb = tl.sum(lk * bt[:, None], axis=0)
        tl.store(du_ptr + t * dim + dims, dsk * dy + dl * sum_lb, mask=dmask)
        ddl = (uu * sum_lb + tl.sum(af * xa, axis=0)) * tl.sigmoid(x)
        tl.store(ddelta_ptr + t * dim + dims, ddl, mask=dmask)
        dbias_acc += tl.where(dmask, ddl, 0.0)
        da_acc += dl[None, :] * xa
        lam = a * lk
        i, r = ip, rp
    tl.store(da_ptr + seg * n * dim + tile, da_acc, mask=m2)
    tl.store(dd_ptr + seg * dim + dims, dd_acc, mask=dmask)
    tl.store(dbias_ptr + seg * dim + dims, dbias_acc, mask=dmask)
