"""Centred depthwise conv along the scan order of packed sequences (MEEPO's causal-free conv).

``sequence_depthwise_conv`` shares the order semantics of :func:`pc3d.kernels.selective_scan`
(``offsets``, ``reverse``, ``stride``), so a Mamba direction can run its conv and its scan on rows
kept in one (serialized) order: the direction is index arithmetic, not a permuted copy.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from pc3d.kernels.packing import batch_index
from pc3d.kernels.scan.interface import check_scan_order
from pc3d.kernels.scan.reference import scan_order

__all__ = ["sequence_depthwise_conv", "sequence_depthwise_conv_ref", "sequence_positions"]


def sequence_positions(offsets: Tensor, reverse: bool = False, stride: int = 1) -> Tensor:
    """``pi (L,)`` int64: the absolute row read at every scan position of the packed sequences.

    ``offsets (S+1,)``; ``pi`` maps each sequence ``[a, e)`` onto itself (``a + scan_order(e - a)``).
    """
    offs = [int(o) for o in offsets.tolist()]
    parts = [a + scan_order(e - a, stride, reverse, offsets.device) for a, e in zip(offs[:-1], offs[1:])]
    return torch.cat(parts) if parts else offsets.new_zeros(0)


def sequence_depthwise_conv_ref(
    x: Tensor, weight: Tensor, offsets: Tensor, reverse: bool = False, stride: int = 1
) -> Tensor:
    """Torch reference (any device, float64 capable, plain autograd); see :func:`sequence_depthwise_conv`.

    The rows are gathered into scan order, every sequence is laid out with ``k - 1`` zero rows
    around it, one grouped ``conv1d`` runs over the whole layout and the result is scattered back.
    """
    nb, nc, length = x.shape
    k = weight.shape[-1]
    left = (k - 1) // 2
    pi = sequence_positions(offsets, reverse, stride)
    counts = (offsets[1:] - offsets[:-1]).to(x.device)
    seq = batch_index(offsets.to(x.device))
    dest = torch.arange(length, device=x.device) + seq * (k - 1) + left  # scan position -> padded column
    buf = x.new_zeros(nb, nc, length + counts.numel() * (k - 1))
    buf[:, :, dest] = x[:, :, pi]
    conv = F.conv1d(buf, weight.to(x.dtype).reshape(nc, 1, k), groups=nc)  # (b, c, padded - k + 1)
    out = torch.empty_like(x)
    out[:, :, pi] = conv[:, :, dest - left]
    return out


class _SequenceConvFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, offsets, reverse, stride):
        from pc3d.kernels.scan import numba_conv

        ctx.save_for_backward(x, weight, offsets)
        ctx.flags = (reverse, stride)
        return numba_conv.conv_forward(x, weight, offsets, reverse, stride)

    @staticmethod
    @once_differentiable
    def backward(ctx, dout):
        from pc3d.kernels.scan import numba_conv

        x, weight, offsets = ctx.saved_tensors
        dx, dw = numba_conv.conv_backward(x, weight, offsets, *ctx.flags, dout)
        return dx, dw, None, None, None


def _validate(x: object, weight: object, offsets: object, reverse: object, stride: object) -> None:
    if not isinstance(x, Tensor) or x.dim() != 3 or not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor (b, c, L), got {getattr(x, 'shape', type(x))}")
    nb, nc, length = x.shape
    if not isinstance(weight, Tensor) or weight.dim() != 2 or weight.shape[0] != nc or weight.shape[1] < 1:
        raise ValueError(
            f"weight must have shape (c, k) = ({nc}, k >= 1), got {getattr(weight, 'shape', None)}"
        )
    if weight.device != x.device:
        raise ValueError(f"weight is on {weight.device} but x is on {x.device}")
    check_scan_order(offsets, reverse, stride, nb, length, "x")


def sequence_depthwise_conv(
    x: Tensor,
    weight: Tensor,
    offsets: Tensor | None = None,
    *,
    reverse: bool = False,
    stride: int = 1,
    backend: str = "auto",
) -> Tensor:
    """Centred ("same") depthwise conv along the scan order of every sequence, zero-padded at its edges.

    With ``pi`` the scan order of a sequence (``reverse`` and ``stride`` as in ``selective_scan``) and
    ``left = (k - 1) // 2``: ``out[pi[p]] = sum_j weight[c, j] * x[pi[p - left + j]]`` over the taps that
    fall inside the sequence (PyTorch ``padding='same'``: for even ``k`` one more tap looks ahead).

    Args:
        x: ``(b, c, L)``; with ``offsets``, ``b == 1`` and ``L`` holds the packed sequences.
        weight: ``(c, k)``.
        offsets: ``(S+1,)`` sequence boundaries, or None for one sequence per batch row.
        reverse, stride: the scan order (see :func:`pc3d.kernels.selective_scan`).
        backend: ``"auto"`` (numba on CPU, the torch reference elsewhere), ``"numba"`` or ``"torch"``.

    Returns:
        ``(b, c, L)`` in the original order; differentiable in ``x`` and ``weight``.
    """
    _validate(x, weight, offsets, reverse, stride)
    if backend not in ("auto", "numba", "torch"):
        raise ValueError(f"backend must be 'auto', 'numba' or 'torch', got {backend!r}")
    if backend == "numba" and x.device.type != "cpu":
        raise ValueError(f"backend='numba' needs CPU tensors, got x on {x.device}")
    length = x.shape[-1]
    offs = offsets if offsets is not None else torch.tensor([0, length])
    if backend == "torch" or (backend == "auto" and x.device.type != "cpu"):
        return sequence_depthwise_conv_ref(x, weight, offs.to(x.device), reverse, stride)
    return _SequenceConvFn.apply(x, weight, offs.to(torch.int64).cpu(), reverse, stride)
