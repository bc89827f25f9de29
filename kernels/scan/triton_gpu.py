"""Triton selective scan (GPU), forward and backward; runs under ``TRITON_INTERPRET=1`` on CPU tensors.

One program owns a tile of ``BLOCK_D`` channels of one batch row and one packed sequence (grid
``(cdiv(d, BLOCK_D), b, S)``) and keeps its ``(BLOCK_D, n)`` state in registers while it walks the sequence in scan
order (reverse / strided index arithmetic, no permuted copies). The forward stores the state at every chunk start
(``ckpt (b, d, n_chunks, n)``). The backward walks the chunks from last to first: it recomputes the chunk's states
into a per-program scratch slab ``(chunk + 1, BLOCK_D, n)`` and runs the adjoint scan, accumulating ``dB``/``dC``
with atomics and ``dA``/``dD``/``dbias`` in registers (stored per program, summed afterwards).
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["DEFAULT_CHUNK", "scan_backward", "scan_forward"]

DEFAULT_CHUNK = 64
LOG2E = 1.4426950408889634


def _kernels():
    from pc3d.kernels.scan import _triton_kernels

    return _triton_kernels._fwd_kernel, _triton_kernels._bwd_kernel


def _compute_dtype(u: Tensor) -> torch.dtype:
    return torch.float64 if u.dtype == torch.float64 else torch.float32


def _prep(u, delta, A, B, C, D, z, delta_bias, ct):
    dim = u.shape[1]
    dev = u.device
    cast = lambda t: t.detach().to(ct).contiguous()  # noqa: E731
    Bg = B.unsqueeze(1) if B.dim() == 3 else B
    Cg = C.unsqueeze(1) if C.dim() == 3 else C
    zeros = torch.zeros(dim, dtype=ct, device=dev)
    return (
        cast(u), cast(delta), cast(Bg), cast(Cg), cast(D) if D is not None else zeros,
        cast(z) if z is not None else cast(u), cast(delta_bias) if delta_bias is not None else zeros,
        (A.detach().to(torch.float64) * LOG2E).to(ct).contiguous(),
    )  # fmt: skip


def _layout(offsets: Tensor, chunk: int) -> tuple[Tensor, int]:
    lengths = offsets[1:] - offsets[:-1]
    counts = (lengths + chunk - 1) // chunk
    base = torch.cumsum(counts, 0) - counts
    return base.contiguous(), int(counts.sum())


def _block_d(dim: int, n_pad: int) -> int:
    block = 16 if n_pad <= 16 else 4
    return min(block, max(1, 1 << (dim - 1).bit_length()))


def scan_forward(
    u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None, z: Tensor | None,
    delta_bias: Tensor | None, softplus: bool, offsets: Tensor, reverse: bool, stride: int, save: bool,
    chunk: int | None = None,
) -> tuple[Tensor, Tensor, Tensor]:  # fmt: skip
    """Same contract as :func:`pc3d.kernels.scan.numba_cpu.scan_forward`, on CUDA (or interpreted CPU) tensors."""
    import triton

    chunk = chunk or DEFAULT_CHUNK
    fwd, _ = _kernels()
    ct = _compute_dtype(u)
    bsz, dim, length = u.shape
    n = A.shape[1]
    u_c, d_c, B_c, C_c, D_c, z_c, bias_c, A2 = _prep(u, delta, A, B, C, D, z, delta_bias, ct)
    groups = B_c.shape[1]
    offs = offsets.to(device=u.device, dtype=torch.int64).contiguous()
    ck_base, n_chunks = _layout(offs, chunk)
    nseg = offs.numel() - 1
    out = torch.empty(bsz, dim, length, dtype=ct, device=u.device)
    last = torch.empty(bsz, nseg, dim, n, dtype=ct, device=u.device)
    ckpt = torch.empty((bsz, dim, n_chunks, n) if save else (1,), dtype=ct, device=u.device)
    block_n = triton.next_power_of_2(n)
    block_d = _block_d(dim, block_n)
    grid = (triton.cdiv(dim, block_d), bsz, nseg)
    fwd[grid](
        u_c, d_c, A2, B_c, C_c, D_c, z_c, bias_c, offs, ck_base, out, last, ckpt,
        dim, length, n, groups, dim // groups, max(n_chunks, 1), stride,
        HAS_Z=z is not None, SOFTPLUS=bool(softplus), REVERSE=bool(reverse), SAVE=bool(save),
        CHUNK=chunk, BLOCK_D=block_d, BLOCK_N=block_n,
    )  # fmt: skip
    return out.to(u.dtype), last, ckpt if save else ckpt[:0]


def scan_backward(
    u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None, z: Tensor | None,
    delta_bias: Tensor | None, softplus: bool, offsets: Tensor, reverse: bool, stride: int, ckpt: Tensor,
    dout: Tensor, dlast: Tensor | None, chunk: int | None = None,
) -> tuple[Tensor, ...]:  # fmt: skip
    """Gradients ``(du, ddelta, dA, dB, dC, dD, dz, ddelta_bias)``; see the numba backend for the contract."""
    import triton

    chunk = chunk or DEFAULT_CHUNK
    _, bwd = _kernels()
    ct = _compute_dtype(u)
    dev = u.device
    bsz, dim, length = u.shape
    n = A.shape[1]
    u_c, d_c, B_c, C_c, D_c, z_c, bias_c, A2 = _prep(u, delta, A, B, C, D, z, delta_bias, ct)
    A_c = A.detach().to(ct).contiguous()
    groups = B_c.shape[1]
    offs = offsets.to(device=dev, dtype=torch.int64).contiguous()
    ck_base, n_chunks = _layout(offs, chunk)
    nseg = offs.numel() - 1
    block_n = triton.next_power_of_2(n)
    block_d = _block_d(dim, block_n)
    grid = (triton.cdiv(dim, block_d), bsz, nseg)
    n_prog = grid[0] * grid[1] * grid[2]
    scratch = torch.empty(n_prog * (chunk + 1) * block_d * block_n, dtype=ct, device=dev)
    dl = (
        dlast.detach().to(ct).contiguous()
        if dlast is not None
        else torch.zeros(bsz, nseg, dim, n, dtype=ct, device=dev)
    )
    du = torch.empty(bsz, dim, length, dtype=ct, device=dev)
    ddelta = torch.empty_like(du)
    dz = torch.empty_like(du) if z is not None else du
    dB = torch.zeros(bsz, groups, n, length, dtype=torch.float32 if ct == torch.float32 else ct, device=dev)
    dC = torch.zeros_like(dB)
    dA_part = torch.empty(bsz, nseg, dim, n, dtype=ct, device=dev)
    dD_part = torch.empty(bsz, nseg, dim, dtype=ct, device=dev)
    dbias_part = torch.empty_like(dD_part)
    dpg = dim // groups
    bwd[grid](
        u_c, d_c, A_c, A2, B_c, C_c, D_c, z_c, bias_c, offs, ck_base, ckpt.detach().to(ct).contiguous(),
        dout.detach().to(ct).contiguous(), dl, scratch, du, ddelta, dz, dB, dC, dA_part, dD_part, dbias_part,
        dim, length, n, groups, dpg, max(n_chunks, 1), stride,
        HAS_Z=z is not None, SOFTPLUS=bool(softplus), REVERSE=bool(reverse), BACK=not reverse,
        GROUP_UNIFORM=dpg % block_d == 0,
        CHUNK=chunk, BLOCK_D=block_d, BLOCK_N=block_n,
    )  # fmt: skip
    if B.dim() == 3:
        dB, dC = dB[:, 0], dC[:, 0]
    return (
        du.to(u.dtype),
        ddelta.to(delta.dtype),
        dA_part.sum((0, 1)).to(A.dtype),
        dB.to(B.dtype),
        dC.to(C.dtype),
        dD_part.sum((0, 1)).to(D.dtype) if D is not None else None,
        dz.to(z.dtype) if z is not None else None,
        dbias_part.sum((0, 1)).to(delta_bias.dtype) if delta_bias is not None else None,
    )
