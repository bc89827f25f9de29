"""Numba CPU kernels of :func:`pc3d.kernels.scan.sequence_depthwise_conv`: forward and backward.

The scan order of every packed sequence (reverse, stride) is first written once into ``pi (L,)``
(absolute row read at every scan position) with the same index arithmetic as the selective scan;
the convolutions then run in parallel over the ``(b, c)`` rows and read their taps through ``pi``,
so the input is never permuted or padded. Every gradient is owned by one row: no atomics, and the
results are deterministic.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit, prange
from torch import Tensor

from pc3d.kernels.scan.numba_cpu import _scan_start, _scan_step

__all__ = ["conv_backward", "conv_forward", "scan_positions"]


@njit(cache=True)
def _fill_order(offsets, reverse, stride, pi):
    """``pi[s0 + p]`` = absolute row at scan position ``p`` of the sequence starting at ``s0``."""
    for seg in range(offsets.shape[0] - 1):
        s0 = offsets[seg]
        length = offsets[seg + 1] - s0
        if length > 0:
            i, r = _scan_start(0, length, stride, reverse)
            for p in range(length):
                pi[s0 + p] = s0 + i
                i, r = _scan_step(i, r, length, stride, reverse)


_BLOCK = 2048  # scan positions per tile: the gathered tile and its outputs stay in L1/L2


@njit(parallel=True, fastmath=True, cache=True)
def _forward_kernel(x, w, offsets, pi, out):
    """x, out (b, c, L); w (c, k); out[pi[p]] = sum_j w[j] x[pi[p - left + j]] inside each sequence.

    Per row, each tile of scan positions is gathered once into a zero-padded buffer, convolved with
    branch-free (vectorisable) loops and scattered back through ``pi``.
    """
    nb, nc, _ = x.shape
    k = w.shape[1]
    left = (k - 1) // 2
    for row in prange(nb * nc):
        b = row // nc
        c = row - b * nc
        xr = x[b, c]
        orow = out[b, c]
        wr = w[c]
        tile = np.empty(_BLOCK + k - 1, dtype=x.dtype)
        acc = np.empty(_BLOCK, dtype=x.dtype)
        for seg in range(offsets.shape[0] - 1):
            s0 = offsets[seg]
            s1 = offsets[seg + 1]
            for q0 in range(s0, s1, _BLOCK):
                m = min(_BLOCK, s1 - q0)
                for i in range(m + k - 1):  # tile[i] = x at scan position q0 - left + i, or 0 outside
                    t = q0 - left + i
                    tile[i] = xr[pi[t]] if s0 <= t < s1 else 0
                for i in range(m):
                    acc[i] = 0
                for j in range(k):
                    wj = wr[j]
                    for i in range(m):
                        acc[i] += wj * tile[i + j]
                for i in range(m):
                    orow[pi[q0 + i]] = acc[i]


@njit(parallel=True, fastmath=True, cache=True)
def _backward_kernel(x, w, offsets, pi, dout, dx, dw_rows):
    """dx (b, c, L): dx[pi[q]] = sum_j w[j] dout[pi[q + left - j]]; dw_rows (b, c, k) per-row partials.

    Same tiling as the forward: the tile holds ``dout`` at scan positions ``q0 + left - (k-1) ...``.
    """
    nb, nc, _ = x.shape
    k = w.shape[1]
    left = (k - 1) // 2
    for row in prange(nb * nc):
        b = row // nc
        c = row - b * nc
        xr = x[b, c]
        gr = dout[b, c]
        dxr = dx[b, c]
        wr = w[c]
        dwr = dw_rows[b, c]
        tile = np.empty(_BLOCK + k - 1, dtype=x.dtype)
        xt = np.empty(_BLOCK, dtype=x.dtype)
        acc = np.empty(_BLOCK, dtype=x.dtype)
        for seg in range(offsets.shape[0] - 1):
            s0 = offsets[seg]
            s1 = offsets[seg + 1]
            for q0 in range(s0, s1, _BLOCK):
                m = min(_BLOCK, s1 - q0)
                base = q0 + left - (k - 1)
                for i in range(m + k - 1):  # tile[i] = dout at scan position base + i, or 0 outside
                    t = base + i
                    tile[i] = gr[pi[t]] if s0 <= t < s1 else 0
                for i in range(m):
                    xt[i] = xr[pi[q0 + i]]
                    acc[i] = 0
                for j in range(k):  # tap j of output q + left - j reads q: tile index i + (k - 1) - j
                    wj = wr[j]
                    dwj = wr[0] * 0
                    for i in range(m):
                        g = tile[i + k - 1 - j]
                        acc[i] += wj * g
                        dwj += g * xt[i]
                    dwr[j] += dwj
                for i in range(m):
                    dxr[pi[q0 + i]] = acc[i]


def scan_positions(offsets: Tensor, length: int, reverse: bool, stride: int) -> np.ndarray:
    """``pi (L,)`` int64: the absolute row read at every scan position of the packed sequences."""
    pi = np.empty(length, dtype=np.int64)
    _fill_order(offsets.numpy(), reverse, stride, pi)
    return pi


def conv_forward(x: Tensor, weight: Tensor, offsets: Tensor, reverse: bool, stride: int) -> Tensor:
    """``x (b, c, L)``, ``weight (c, k)``, ``offsets (S+1,)`` int64 CPU -> ``(b, c, L)``."""
    x = x.contiguous()
    w = weight.detach().to(x.dtype).contiguous()
    out = torch.empty_like(x)
    pi = scan_positions(offsets, x.shape[-1], reverse, stride)
    _forward_kernel(x.detach().numpy(), w.numpy(), offsets.numpy(), pi, out.numpy())
    return out


def conv_backward(
    x: Tensor, weight: Tensor, offsets: Tensor, reverse: bool, stride: int, dout: Tensor
) -> tuple[Tensor, Tensor]:
    """Gradients ``(dx (b, c, L), dweight (c, k))`` of :func:`conv_forward`."""
    x = x.contiguous()
    w = weight.detach().to(x.dtype).contiguous()
    dout = dout.to(x.dtype).contiguous()
    dx = torch.empty_like(x)
    dw_rows = torch.zeros(x.shape[0], x.shape[1], w.shape[1], dtype=x.dtype)
    pi = scan_positions(offsets, x.shape[-1], reverse, stride)
    _backward_kernel(
        x.detach().numpy(), w.numpy(), offsets.numpy(), pi, dout.numpy(), dx.numpy(), dw_rows.numpy()
    )
    return dx, dw_rows.sum(0).to(weight.dtype)
