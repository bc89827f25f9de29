"""Triton kernels of the selective scan (see :mod:`pc3d.kernels.scan.triton_gpu` for the design).

Imported lazily by ``triton_gpu``: ``triton.jit`` chooses compiled vs interpreted (``TRITON_INTERPRET=1``) when
this module is first imported, so set the variable before the first Triton scan call.
"""

import triton
import triton.language as tl


@triton.jit
def _strided_index(p, length, stride):
    """Original index (and phase) of position ``p`` of the strided order of a sequence of ``length``."""
    q = length // stride
    rem = length - q * stride
    long_part = rem * (q + 1)
    in_long = p < long_part
    pp = tl.maximum(p - long_part, 0)
    q_safe = tl.maximum(q, 1)
    r = tl.where(in_long, p // (q + 1), rem + pp // q_safe)
    k = tl.where(in_long, p - r * (q + 1), pp - (r - rem) * q_safe)
    return r + stride * k, r


@triton.jit
def _step(i, r, length, stride, BACKWARDS: tl.constexpr):
    """Move (index, phase) one position along the strided order (backwards: towards its start)."""
    if BACKWARDS:
        i2 = i - stride
        wrap = i2 < 0
        r = tl.where(wrap, r - 1, r)
        i = tl.where(wrap, r + stride * ((length - 1 - r) // stride), i2)
    else:
        i2 = i + stride
        wrap = i2 >= length
        r = tl.where(wrap, r + 1, r)
        i = tl.where(wrap, r, i2)
    return i, r


@triton.jit
def _delta(dptr, mask, bias, SOFTPLUS: tl.constexpr):
    dl = tl.load(dptr, mask=mask, other=0.0) + bias
    if SOFTPLUS:
        dl = tl.where(dl <= 20.0, tl.log(1.0 + tl.exp(dl)), dl)
    return dl


@triton.jit
def _fwd_kernel(
    u_ptr, delta_ptr, a2_ptr, b_ptr, c_ptr, dskip_ptr, z_ptr, bias_ptr, offs_ptr, ckb_ptr,
    out_ptr, last_ptr, ckpt_ptr, dim, length, n, groups, dpg, n_chunks, stride,
    HAS_Z: tl.constexpr, SOFTPLUS: tl.constexpr, REVERSE: tl.constexpr, SAVE: tl.constexpr,
    CHUNK: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    pid_d = tl.program_id(0)
    b = tl.program_id(1)
    seg = tl.program_id(2)
    nseg = tl.num_programs(2)
    dims = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    ns = tl.arange(0, BLOCK_N)
    dmask = dims < dim
    m2 = dmask[:, None] & (ns[None, :] < n)
    a2 = tl.load(a2_ptr + dims[:, None] * n + ns[None, :], mask=m2, other=0.0)
    dsk = tl.load(dskip_ptr + dims, mask=dmask, other=0.0)
    bias = tl.load(bias_ptr + dims, mask=dmask, other=0.0)
    grp = dims // dpg
    row = (b * dim + dims).to(tl.int64) * length  # (BLOCK_D,)
    bc_off = ((b * groups + grp).to(tl.int64) * n)[:, None] * length + ns[
        None, :
    ] * length  # (BLOCK_D, BLOCK_N)
    s0 = tl.load(offs_ptr + seg)
    seq_len = (tl.load(offs_ptr + seg + 1) - s0).to(tl.int32)
    ck0 = tl.load(ckb_ptr + seg)
    h = tl.zeros((BLOCK_D, BLOCK_N), dtype=a2.dtype)
    start = 0
    if REVERSE:
        start = seq_len - 1
    i, r = _strided_index(start, seq_len, stride)
    n_ck = tl.cdiv(seq_len, CHUNK)
    for c in range(0, n_ck):
        if SAVE:
            ck_off = ((b * dim + dims).to(tl.int64) * n_chunks + ck0 + c)[:, None] * n + ns[None, :]
            tl.store(ckpt_ptr + ck_off, h, mask=m2)
        steps = tl.minimum(CHUNK, seq_len - c * CHUNK)
        for _ in range(0, steps):
            t = s0 + i
            dl = _delta(delta_ptr + row + t, dmask, bias, SOFTPLUS)
            uu = tl.load(u_ptr + row + t, mask=dmask, other=0.0)
            bt = tl.load(b_ptr + bc_off + t, mask=m2, other=0.0)
            ct = tl.load(c_ptr + bc_off + t, mask=m2, other=0.0)
            h = tl.exp2(dl[:, None] * a2) * h + (dl * uu)[:, None] * bt
            y = tl.sum(h * ct, axis=1) + dsk * uu
            if HAS_Z:
                zz = tl.load(z_ptr + row + t, mask=dmask, other=0.0)
                y = y * zz * tl.sigmoid(zz)
            tl.store(out_ptr + row + t, y, mask=dmask)
            i, r = _step(i, r, seq_len, stride, REVERSE)
    last_off = ((b * nseg + seg) * dim + dims).to(tl.int64)[:, None] * n + ns[None, :]
    tl.store(last_ptr + last_off, h, mask=m2)


@triton.jit
def _bwd_kernel(
    u_ptr, delta_ptr, a_ptr, a2_ptr, b_ptr, c_ptr, dskip_ptr, z_ptr, bias_ptr, offs_ptr, ckb_ptr, ckpt_ptr,
    dout_ptr, dlast_ptr, scratch_ptr, du_ptr, ddelta_ptr, dz_ptr, db_ptr, dc_ptr, da_ptr, dd_ptr, dbias_ptr,
    dim, length, n, groups, dpg, n_chunks, stride,
    HAS_Z: tl.constexpr, SOFTPLUS: tl.constexpr, REVERSE: tl.constexpr, BACK: tl.constexpr,
    GROUP_UNIFORM: tl.constexpr,
    CHUNK: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr,
):  # fmt: skip
    pid_d = tl.program_id(0)
    b = tl.program_id(1)
    seg = tl.program_id(2)
    nseg = tl.num_programs(2)
    prog = (seg * tl.num_programs(1) + b) * tl.num_programs(0) + pid_d
    dims = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    ns = tl.arange(0, BLOCK_N)
    dmask = dims < dim
    nmask = ns < n
    m2 = dmask[:, None] & nmask[None, :]
    tile = dims[:, None] * n + ns[None, :]
    a_full = tl.load(a_ptr + tile, mask=m2, other=0.0)
    a2 = tl.load(a2_ptr + tile, mask=m2, other=0.0)
    dsk = tl.load(dskip_ptr + dims, mask=dmask, other=0.0)
    bias = tl.load(bias_ptr + dims, mask=dmask, other=0.0)
    grp = dims // dpg
    row = (b * dim + dims).to(tl.int64) * length
    bc_off = ((b * groups + grp).to(tl.int64) * n)[:, None] * length + ns[None, :] * length
    bc_off_g = ((b * groups + (pid_d * BLOCK_D) // dpg).to(tl.int64) * n + ns) * length  # (BLOCK_N,)
    scratch = scratch_ptr + prog.to(tl.int64) * (CHUNK + 1) * BLOCK_D * BLOCK_N
    slab = tl.arange(0, BLOCK_D)[:, None] * BLOCK_N + ns[None, :]
    s0 = tl.load(offs_ptr + seg)
    seq_len = (tl.load(offs_ptr + seg + 1) - s0).to(tl.int32)
    ck0 = tl.load(ckb_ptr + seg)
    state_off = ((b * nseg + seg) * dim + dims).to(tl.int64)[:, None] * n + ns[None, :]
    lam = tl.load(dlast_ptr + state_off, mask=m2, other=0.0)  # carries a_{t+1} λ_{t+1}
    da_acc = tl.zeros((BLOCK_D, BLOCK_N), dtype=a2.dtype)
    dd_acc = tl.zeros((BLOCK_D,), dtype=a2.dtype)
    dbias_acc = tl.zeros((BLOCK_D,), dtype=a2.dtype)
    n_ck = tl.cdiv(seq_len, CHUNK)
    for cc in range(0, n_ck):
        c = n_ck - 1 - cc
        p0 = c * CHUNK
        steps = tl.minimum(CHUNK, seq_len - p0)
        ck_off = ((b * dim + dims).to(tl.int64) * n_chunks + ck0 + c)[:, None] * n + ns[None, :]
        h = tl.load(ckpt_ptr + ck_off, mask=m2, other=0.0)
        tl.store(scratch + slab, h)
        start = p0
        if REVERSE:
            start = seq_len - 1 - p0
        i, r = _strided_index(start, seq_len, stride)
        for q in range(0, steps):  # recompute the chunk's states
            t = s0 + i
            dl = _delta(delta_ptr + row + t, dmask, bias, SOFTPLUS)
            uu = tl.load(u_ptr + row + t, mask=dmask, other=0.0)
            bt = tl.load(b_ptr + bc_off + t, mask=m2, other=0.0)
            h = tl.exp2(dl[:, None] * a2) * h + (dl * uu)[:, None] * bt
            tl.store(scratch + (q + 1) * BLOCK_D * BLOCK_N + slab, h)
            i, r = _step(i, r, seq_len, stride, REVERSE)
        end = p0 + steps - 1  # the adjoint scan starts at the chunk's last position
        if REVERSE:
            end = seq_len - 1 - end
        i, r = _strided_index(end, seq_len, stride)
        for qq in range(0, steps):  # adjoint scan
            q = steps - 1 - qq
            t = s0 + i
            dl = _delta(delta_ptr + row + t, dmask, bias, SOFTPLUS)
            uu = tl.load(u_ptr + row + t, mask=dmask, other=0.0)
            g_out = tl.load(dout_ptr + row + t, mask=dmask, other=0.0)
            bt = tl.load(b_ptr + bc_off + t, mask=m2, other=0.0)
            ct = tl.load(c_ptr + bc_off + t, mask=m2, other=0.0)
            h_t = tl.load(scratch + (q + 1) * BLOCK_D * BLOCK_N + slab)
            h_prev = tl.load(scratch + q * BLOCK_D * BLOCK_N + slab)
            if HAS_Z:
                y = tl.sum(h_t * ct, axis=1) + dsk * uu
                zz = tl.load(z_ptr + row + t, mask=dmask, other=0.0)
                sg = tl.sigmoid(zz)
                tl.store(dz_ptr + row + t, g_out * y * sg * (1.0 + zz * (1.0 - sg)), mask=dmask)
                dy = g_out * zz * sg
            else:
                dy = g_out
            dy = tl.where(dmask, dy, 0.0)
            dd_acc += dy * uu
            a = tl.exp2(dl[:, None] * a2)
            lk = tl.where(m2, lam + dy[:, None] * ct, 0.0)
            x = a * h_prev * lk
            dc_val = dy[:, None] * h_t
            db_val = lk * (dl * uu)[:, None]
            if GROUP_UNIFORM:
                tl.atomic_add(dc_ptr + bc_off_g + t, tl.sum(dc_val, axis=0), mask=nmask)
                tl.atomic_add(db_ptr + bc_off_g + t, tl.sum(db_val, axis=0), mask=nmask)
            else:
                tl.atomic_add(dc_ptr + bc_off + t, dc_val, mask=m2)
                tl.atomic_add(db_ptr + bc_off + t, db_val, mask=m2)
            sum_lb = tl.sum(lk * bt, axis=1)
            tl.store(du_ptr + row + t, dsk * dy + dl * sum_lb, mask=dmask)
            ddl = uu * sum_lb + tl.sum(a_full * x, axis=1)
            da_acc += dl[:, None] * x
            if SOFTPLUS:
                ddl = ddl * tl.sigmoid(tl.load(delta_ptr + row + t, mask=dmask, other=0.0) + bias)
            tl.store(ddelta_ptr + row + t, ddl, mask=dmask)
            dbias_acc += tl.where(dmask, ddl, 0.0)
            lam = a * lk
            i, r = _step(i, r, seq_len, stride, BACK)
    part = ((b * nseg + seg) * dim + dims).to(tl.int64)
    tl.store(da_ptr + part[:, None] * n + ns[None, :], da_acc, mask=m2)
    tl.store(dd_ptr + part, dd_acc, mask=dmask)
    tl.store(dbias_ptr + part, dbias_acc, mask=dmask)
