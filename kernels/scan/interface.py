"""Public selective-scan op: argument validation, backend dispatch and the autograd function."""

from __future__ import annotations

import os
from types import ModuleType

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from pc3d.kernels.packing import check_offsets
from pc3d.kernels.scan.reference import selective_scan_ref

__all__ = ["BACKENDS", "selective_scan"]

BACKENDS = ("auto", "torch", "numba", "triton", "mamba_ssm")


def _check_tensor(name: str, t: object, ndim: tuple[int, ...], device: torch.device) -> Tensor:
    if not isinstance(t, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() not in ndim:
        raise ValueError(
            f"{name} must have {' or '.join(map(str, ndim))} dimensions, got shape {tuple(t.shape)}"
        )
    if not t.is_floating_point():
        raise ValueError(f"{name} must be a real floating-point tensor, got dtype {t.dtype}")
    if t.device != device:
        raise ValueError(f"{name} is on {t.device} but u is on {device}; all tensors must share one device")
    return t


def _validate(u, delta, A, B, C, D, z, delta_bias, offsets, reverse, stride, backend) -> None:
    if not isinstance(u, Tensor):
        raise ValueError(f"u must be a torch.Tensor, got {type(u).__name__}")
    dev = u.device
    _check_tensor("u", u, (3,), dev)
    bsz, dim, length = u.shape
    if length < 1 or dim < 1 or bsz < 1:
        raise ValueError(f"u must have shape (b, d, L) with b, d, L >= 1, got {tuple(u.shape)}")
    _check_tensor("delta", delta, (3,), dev)
    if delta.shape != u.shape:
        raise ValueError(f"delta must have the shape of u {tuple(u.shape)}, got {tuple(delta.shape)}")
    _check_tensor("A", A, (2,), dev)
    if A.shape[0] != dim or A.shape[1] < 1:
        raise ValueError(f"A must have shape (d, n) = ({dim}, n >= 1), got {tuple(A.shape)}")
    n = A.shape[1]
    for name, X in (("B", B), ("C", C)):
        _check_tensor(name, X, (3, 4), dev)
        groups = 1 if X.dim() == 3 else X.shape[1]
        expect = (bsz, n, length) if X.dim() == 3 else (bsz, groups, n, length)
        if tuple(X.shape) != expect or groups < 1 or dim % groups != 0:
            raise ValueError(
                f"{name} must have shape (b, n, L) = {(bsz, n, length)} or (b, g, n, L) with d % g == 0 "
                f"(d = {dim}), got {tuple(X.shape)}"
            )
    if B.shape != C.shape:
        raise ValueError(f"B and C must have the same shape, got {tuple(B.shape)} and {tuple(C.shape)}")
    if z is not None:
        _check_tensor("z", z, (3,), dev)
        if z.shape != u.shape:
            raise ValueError(f"z must have the shape of u {tuple(u.shape)}, got {tuple(z.shape)}")
    for name, t in (("delta", delta), ("B", B), ("C", C), ("z", z)):
        if t is not None and t.dtype != u.dtype:
            raise ValueError(f"{name} must have u's dtype {u.dtype}, got {t.dtype}")
    for name, t in (("D", D), ("delta_bias", delta_bias)):
        if t is not None:
            _check_tensor(name, t, (1,), dev)
            if t.shape[0] != dim:
                raise ValueError(f"{name} must have shape (d,) = ({dim},), got {tuple(t.shape)}")
    check_scan_order(offsets, reverse, stride, bsz, length, "u")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


def check_scan_order(
    offsets: object, reverse: object, stride: object, bsz: int, length: int, name: str
) -> None:
    """Validate the scan-order arguments shared by the scan and conv ops (``name``: the ``(b, d, L)`` input)."""
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise ValueError(f"stride must be an int >= 1, got {stride!r}")
    if not isinstance(reverse, bool):
        raise ValueError(f"reverse must be a bool, got {reverse!r}")
    if offsets is None:
        return
    if (
        not isinstance(offsets, Tensor)
        or offsets.dim() != 1
        or offsets.dtype not in (torch.int32, torch.int64)
    ):
        raise ValueError("offsets must be a 1-D int32/int64 tensor (S+1,) of sequence boundaries")
    if bsz != 1:
        raise ValueError(f"offsets (packed sequences) require b == 1, got {name} with b = {bsz}")
    if offsets.numel() < 2:
        raise ValueError(f"offsets must have at least 2 entries (S+1,), got {offsets.numel()}")
    check_offsets(offsets.detach(), length, "offsets", length_name="L")


def _triton_usable(dev: torch.device) -> bool:
    return dev.type == "cuda" or (dev.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1")


def _resolve_backend(backend: str, u: Tensor, n: int, offsets, reverse: bool, stride: int) -> str:
    dev = u.device
    if backend == "auto":
        if dev.type == "cpu":
            return "numba"
        from pc3d.kernels.scan import mamba_cuda

        if mamba_cuda.applicable(u, n, offsets, reverse, stride):
            return "mamba_ssm"
        return "triton" if dev.type == "cuda" else "torch"
    if backend == "numba" and dev.type != "cpu":
        raise ValueError(f"backend='numba' needs CPU tensors, got u on {dev}")
    if backend == "triton" and not _triton_usable(dev):
        raise ValueError(
            f"backend='triton' needs CUDA tensors (or CPU tensors with TRITON_INTERPRET=1), got {dev}"
        )
    if backend == "mamba_ssm":
        from pc3d.kernels.scan import mamba_cuda

        reason = mamba_cuda.unsupported_reason(u, n, offsets, reverse, stride)
        if reason is not None:
            raise ValueError(f"backend='mamba_ssm' cannot run this call: {reason}")
    return backend


def _impl(backend: str) -> ModuleType:
    if backend == "numba":
        from pc3d.kernels.scan import numba_cpu

        return numba_cpu
    from pc3d.kernels.scan import triton_gpu

    return triton_gpu


class _SelectiveScanFn(torch.autograd.Function):
    """Autograd wrapper around a backend module exposing ``scan_forward`` / ``scan_backward``."""

    @staticmethod
    def forward(ctx, impl, u, delta, A, B, C, D, z, delta_bias, softplus, offsets, reverse, stride):
        save = any(ctx.needs_input_grad[1:9])
        out, last, ckpt = impl.scan_forward(
            u, delta, A, B, C, D, z, delta_bias, softplus, offsets, reverse, stride, save
        )
        ctx.impl = impl
        ctx.flags = (softplus, reverse, stride)
        ctx.save_for_backward(u, delta, A, B, C, D, z, delta_bias, offsets, ckpt)
        ctx.set_materialize_grads(False)
        return out, last.to(u.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, dout, dlast):
        u, delta, A, B, C, D, z, delta_bias, offsets, ckpt = ctx.saved_tensors
        softplus, reverse, stride = ctx.flags
        if dout is None:
            dout = torch.zeros_like(u)
        grads = ctx.impl.scan_backward(
            u, delta, A, B, C, D, z, delta_bias, softplus, offsets, reverse, stride, ckpt, dout, dlast
        )
        return (None, *grads, None, None, None, None)


def selective_scan(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
    *,
    offsets: Tensor | None = None,
    reverse: bool = False,
    stride: int = 1,
    return_last_state: bool = False,
    backend: str = "auto",
) -> Tensor | tuple[Tensor, Tensor]:
    """Selective scan (Mamba S6) with mamba-ssm ``selective_scan_fn`` semantics, packing, reverse and stride.

    For every row ``(b, d)`` and scan step ``t``: ``Δ = softplus(δ + bias)`` (or ``δ + bias``),
    ``h = exp(Δ·A) * h + Δ·B_t·u_t``, ``y = C_t·h + D·u``, ``out = y * silu(z)``; ``h = 0`` at every sequence start.

    Args:
        u, delta: ``(b, d, L)``; z: ``(b, d, L)`` or None (no gate).
        A: ``(d, n)`` (real; Mamba uses ``-exp(A_log)``).
        B, C: ``(b, n, L)`` or grouped ``(b, g, n, L)`` (channel ``d`` uses group ``d // (d_total / g)``).
        D, delta_bias: ``(d,)`` or None.
        delta_softplus: apply softplus to ``delta + delta_bias``.
        offsets: ``(S+1,)`` int boundaries of packed sequences (point clouds) along ``L``; needs ``b == 1``.
            The state resets at every boundary and ``reverse``/``stride`` apply within each sequence.
        reverse: scan every sequence from its end (with ``stride``: the reversal of the strided order).
        stride: ``s`` scans ``0, s, 2s, ..., 1, 1+s, ...`` as one sequence (state carried across phases).
            Outputs are always returned in the original order.
        return_last_state: also return the final states ``(b, d, n)``, or ``(S, d, n)`` with offsets
            (differentiable).
        backend: ``"auto"`` (numba on CPU; on CUDA mamba_ssm when installed and applicable, else triton),
            ``"torch"`` (reference, float64 capable), ``"numba"``, ``"triton"``, ``"mamba_ssm"``.

    Returns:
        ``out (b, d, L)`` in ``u``'s dtype (and the last states). All inputs except offsets get gradients.
    Computation is float32, or float64 for float64 inputs (torch and numba backends).
    """
    _validate(u, delta, A, B, C, D, z, delta_bias, offsets, reverse, stride, backend)
    n = A.shape[1]
    chosen = _resolve_backend(backend, u, n, offsets, reverse, stride)
    if chosen == "torch":
        return selective_scan_ref(
            u, delta, A, B, C, D, z, delta_bias, delta_softplus, offsets, reverse, stride, return_last_state
        )
    if chosen == "mamba_ssm":
        from pc3d.kernels.scan import mamba_cuda

        return mamba_cuda.selective_scan(
            u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state
        )
    length = u.shape[-1]
    offs = offsets if offsets is not None else torch.tensor([0, length], dtype=torch.int64)
    offs = offs.to(torch.int64)
    offs = offs.cpu() if chosen == "numba" else offs.to(u.device)
    out, last = _SelectiveScanFn.apply(
        _impl(chosen), u, delta, A, B, C, D, z, delta_bias, bool(delta_softplus), offs, reverse, stride
    )
    if not return_last_state:
        return out
    last = last[0] if offsets is not None else last[:, 0]
    return out, last
