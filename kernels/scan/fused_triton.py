"""Triton (GPU) host side of the token-major mixer ops; runs under ``TRITON_INTERPRET=1`` on CPU tensors.

- conv + SiLU: grid ``(cdiv(L, BLOCK_L), cdiv(c, BLOCK_C))`` over scan positions and channels; every program
  gathers its taps through ``pi`` (row at every scan position) and masks taps of another sequence with
  ``seg`` (sequence of every scan position). The backward writes per-program weight-gradient partials
  ``(cdiv(L, BLOCK_L), k, c)``, summed afterwards (no atomics).
- scan: grid ``(cdiv(d, BLOCK_D), S)``; one program keeps the ``(n, BLOCK_D)`` states of one sequence in
  registers and walks it in scan order with coalesced row loads. The backward stores the recomputed states
  in ``hs (L, n, d)`` and reduces ``dB``/``dC`` per channel block into partials.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

__all__ = ["conv_backward", "conv_forward", "scan_backward", "scan_forward"]

LOG2E = 1.4426950408889634
_BLOCK_L = 32
_BLOCK_D = 32


def _k():
    from pc3d.kernels.scan import _fused_triton_kernels

    return _fused_triton_kernels


def _block_c(nch: int) -> int:
    import triton

    return min(128, triton.next_power_of_2(nch))


def _maps(offs: Tensor, pi: np.ndarray, device: torch.device) -> tuple[Tensor, Tensor]:
    counts = (offs[1:] - offs[:-1]).to(torch.int64)
    seg = torch.repeat_interleave(torch.arange(counts.numel(), dtype=torch.int32), counts)
    return torch.from_numpy(pi).to(device), seg.to(device)


def conv_forward(x: Tensor, wt: Tensor, offs: Tensor, pi: np.ndarray, out: Tensor, add_from: int) -> None:
    """``x, out (L, c)``, ``wt (k, c)``; writes ``silu(conv)`` into ``out`` (channels ``>= add_from`` added)."""
    import triton

    length, nch = x.shape
    pi_t, seg = _maps(offs, pi, x.device)
    bc = _block_c(nch)
    grid = (triton.cdiv(length, _BLOCK_L), triton.cdiv(nch, bc))
    _k()._conv_fwd_kernel[grid](
        x, wt, pi_t, seg, out, length, nch, add_from, K=wt.shape[0], BLOCK_L=_BLOCK_L, BLOCK_C=bc
    )


def conv_backward(x: Tensor, wt: Tensor, offs: Tensor, pi: np.ndarray, dout: Tensor) -> tuple[Tensor, Tensor]:
    """Gradients ``(dx (L, c), dwt (k, c))`` of :func:`conv_forward`."""
    import triton

    length, nch = x.shape
    k = wt.shape[0]
    pi_t, seg = _maps(offs, pi, x.device)
    bc = _block_c(nch)
    grid = (triton.cdiv(length, _BLOCK_L), triton.cdiv(nch, bc))
    g = torch.empty_like(x)
    dw_part = torch.empty(grid[0], k, nch, dtype=x.dtype, device=x.device)
    kern = _k()
    kern._conv_bwd_grad_kernel[grid](
        x, wt, pi_t, seg, dout, g, dw_part, length, nch, K=k, BLOCK_L=_BLOCK_L, BLOCK_C=bc
    )
    dx = torch.empty_like(x)
    kern._conv_bwd_input_kernel[grid](wt, pi_t, seg, g, dx, length, nch, K=k, BLOCK_L=_BLOCK_L, BLOCK_C=bc)
    return dx, dw_part.sum(0)


def _scan_setup(delta: Tensor, A: Tensor, offs: Tensor):
    import triton

    dim = delta.shape[1]
    n = A.shape[1]
    offs_d = offs.to(delta.device)
    a2t = (A.to(torch.float64) * LOG2E).to(delta.dtype).t().contiguous()  # (n, d)
    block_d = min(_BLOCK_D, triton.next_power_of_2(dim))
    grid = (triton.cdiv(dim, block_d), offs.numel() - 1)
    return dim, n, offs_d, a2t, block_d, triton.next_power_of_2(n), grid


def scan_forward(
    u: Tensor, u0: int, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor, bias: Tensor,
    offs: Tensor, reverse: bool, stride: int, out: Tensor, accumulate: bool,
) -> None:  # fmt: skip
    """``u (L, >= u0 + d)`` (columns ``u0 ..``), ``delta, out (L, d)``, ``A (d, n)``, ``B, C (L, n)``."""
    dim, n, offs_d, a2t, block_d, block_n, grid = _scan_setup(delta, A, offs)
    _k()._scan_fwd_kernel[grid](
        u[:, u0:], u.stride(0), delta, a2t, B, C, D, bias, offs_d, out, dim, n, stride,
        ACCUMULATE=bool(accumulate), REVERSE=bool(reverse), BLOCK_D=block_d, BLOCK_N=block_n,
    )  # fmt: skip


def scan_backward(
    u: Tensor, u0: int, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor, bias: Tensor,
    offs: Tensor, reverse: bool, stride: int, dout: Tensor,
) -> tuple[Tensor, ...]:  # fmt: skip
    """Gradients ``(du, ddelta, dA, dB, dC, dD, dbias)`` of :func:`scan_forward`."""
    dim, n, offs_d, a2t, block_d, block_n, grid = _scan_setup(delta, A, offs)
    length = delta.shape[0]
    nseg = grid[1]
    dev, ct = delta.device, delta.dtype
    at = A.to(ct).t().contiguous()
    hs = torch.empty(length, n, dim, dtype=ct, device=dev)
    du = torch.empty_like(delta)
    ddelta = torch.empty_like(delta)
    db = torch.zeros(grid[0], length, n, dtype=ct, device=dev)
    dc = torch.zeros_like(db)
    da = torch.empty(nseg, n, dim, dtype=ct, device=dev)
    dd = torch.empty(nseg, dim, dtype=ct, device=dev)
    dbias = torch.empty_like(dd)
    _k()._scan_bwd_kernel[grid](
        u[:, u0:], u.stride(0), delta, at, a2t, B, C, D, bias, offs_d, dout, hs,
        du, ddelta, db, dc, da, dd, dbias, dim, length, n, stride,
        REVERSE=bool(reverse), BACK=not reverse, BLOCK_D=block_d, BLOCK_N=block_n,
    )  # fmt: skip
    return du, ddelta, da.sum(0).t().contiguous(), db.sum(0), dc.sum(0), dd.sum(0), dbias.sum(0)
