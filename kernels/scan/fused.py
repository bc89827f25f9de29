"""Token-major fused ops of the MEEPO mixer: ``conv_silu`` and ``mixer_scan`` on ``(L, channels)`` rows.

Both take rows in one (serialized) order, packed by ``offsets``, and apply a direction as its scan order
(``reverse``, ``stride``, as in :func:`pc3d.kernels.selective_scan`), never crossing a sequence boundary:

- :func:`conv_silu`: ``silu(centred depthwise conv)`` along the scan order, one pass (optionally with the rows'
  projection, the mixer's ``x_proj``, in the same pass);
- :func:`conv_silu_sum`: ``conv_silu`` along several scan orders, summed (the mixer's gate branch), one pass on
  CPU;
- :func:`mixer_scan`: ``softplus(δ + bias)``, the ZOH/Euler discretisation, the recurrence and the ``D`` skip,
  one pass, with the state reset at every sequence start (optionally with ``δ`` from a low-rank projection, the
  mixer's ``dt_proj``, formed row by row).

Backends: ``"numba"`` (CPU), ``"triton"`` (CUDA, or CPU tensors under ``TRITON_INTERPRET=1``) and ``"torch"``
(the channel-major reference kernels on transposed views, float64 capable). ``"auto"`` picks numba on CPU and
Triton on CUDA. Without autograd, ``out`` lets the caller reuse one buffer (and add into it) across directions.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

from pc3d.kernels.scan.interface import check_scan_order
from pc3d.kernels.scan.reference import selective_scan_ref
from pc3d.kernels.scan.sequence_conv import sequence_depthwise_conv_ref

__all__ = [
    "FUSED_BACKENDS",
    "conv_silu",
    "conv_silu_sum",
    "mixer_scan",
    "recomputing_for_backward",
    "resolve_backend",
]

_OUTPUT_UNUSED: ContextVar[bool] = ContextVar("pc3d_scan_output_unused", default=False)


@contextmanager
def recomputing_for_backward() -> Iterator[None]:
    """Inside, :func:`mixer_scan` records its inputs for autograd but leaves its output uncomputed.

    For activation checkpointing whose recomputed forward ends in the scan (the recompute context of
    ``torch.utils.checkpoint(..., context_fn=...)``): the scan's backward needs its inputs only, and the
    recomputed output is discarded, so evaluating the recurrence again would be wasted work.
    """
    token = _OUTPUT_UNUSED.set(True)
    try:
        yield
    finally:
        _OUTPUT_UNUSED.reset(token)


FUSED_BACKENDS = ("auto", "numba", "triton", "torch")


def resolve_backend(backend: str, device: torch.device) -> str:
    """The backend ``backend`` runs as on ``device`` (``"auto"``: numba on CPU, Triton on CUDA)."""
    if backend not in FUSED_BACKENDS:
        raise ValueError(f"backend must be one of {FUSED_BACKENDS}, got {backend!r}")
    if backend == "auto":
        return "numba" if device.type == "cpu" else "triton" if device.type == "cuda" else "torch"
    if backend == "numba" and device.type != "cpu":
        raise ValueError(f"backend='numba' needs CPU tensors, got {device}")
    if backend == "triton" and not (
        device.type == "cuda" or (device.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1")
    ):
        raise ValueError(f"backend='triton' needs CUDA tensors (or TRITON_INTERPRET=1 on CPU), got {device}")
    return backend


def _compute_dtype(x: Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _c(t: Tensor, ct: torch.dtype) -> Tensor:
    return t.detach().to(ct).contiguous()


def _rows(u: Tensor, ct: torch.dtype) -> tuple[Tensor, int]:
    """``u (L, d)`` as ``(parent (L, W) contiguous, column of u's first channel)`` without a copy when ``u`` is a
    column slice of a contiguous ``(L, W)`` tensor in the compute dtype, else a contiguous copy and 0."""
    u = u.detach()
    if u.dtype != ct:
        return u.to(ct).contiguous(), 0
    if u.is_contiguous():
        return u, 0
    length, dim = u.shape
    width = u.stride(0)
    if u.stride(1) == 1 and width >= dim:
        col = u.storage_offset() % width
        base = u.storage_offset() - col
        if col + dim <= width and base + length * width <= u.untyped_storage().nbytes() // u.element_size():
            return u.as_strided((length, width), (width, 1), base), col
    return u.contiguous(), 0


def _offsets(offsets: Tensor | None, length: int) -> Tensor:
    """int64 CPU offsets, ``[0, L]`` for one sequence."""
    if offsets is None:
        return torch.tensor([0, length], dtype=torch.int64)
    return offsets.detach().to(device="cpu", dtype=torch.int64).contiguous()


def _positions(offs: Tensor, length: int, reverse: bool, stride: int) -> np.ndarray:
    from pc3d.kernels.scan.numba_conv import scan_positions

    return scan_positions(offs, length, reverse, stride)


# ----------------------------------------------------------------------------- backend adapters


def _conv_fwd(be, x, wt, offs, reverse, stride, out, add_from):
    """x, out (L, c) compute dtype; wt (k, c); writes silu(conv) into out (channels >= add_from added)."""
    pi = _positions(offs, x.shape[0], reverse, stride)
    if be == "numba":
        from pc3d.kernels.scan import fused_numba

        fused_numba.conv_forward(x.numpy(), wt.numpy(), offs.numpy(), pi, out.numpy(), add_from)
    else:
        from pc3d.kernels.scan import fused_triton

        fused_triton.conv_forward(x, wt, offs, pi, out, add_from)


def _conv_proj_fwd(x, wt, offs, reverse, stride, out, add_from, proj_weight) -> Tensor:
    """numba: :func:`_conv_fwd` that also returns ``out @ proj_weight.T`` ``(L, m)``, projected row by row."""
    from pc3d.kernels.scan import fused_numba

    pi = _positions(offs, x.shape[0], reverse, stride)
    proj = torch.empty(x.shape[0], proj_weight.shape[0], dtype=x.dtype)
    fused_numba.conv_forward(
        x.numpy(), wt.numpy(), offs.numpy(), pi, out.numpy(), add_from, proj_weight.numpy(), proj.numpy()
    )
    return proj


def _conv_bwd(be, x, wt, offs, reverse, stride, dout, proj_weight=None, dproj=None, dx=None):
    """``(dx, dwt, dproj_weight)``; the last is None without ``proj_weight (m, c)`` (numba only), whose
    ``dproj (L, m)`` is then added to the output gradient row by row. numba adds into a given ``dx``."""
    pi = _positions(offs, x.shape[0], reverse, stride)
    if be == "numba":
        from pc3d.kernels.scan import fused_numba

        arrays = (None, None) if proj_weight is None else (proj_weight.numpy(), dproj.numpy())
        grads = fused_numba.conv_backward(
            x.numpy(), wt.numpy(), offs.numpy(), pi, dout.numpy(), *arrays, None if dx is None else dx.numpy()
        )
        dx, dwt, dwp = (torch.from_numpy(g) for g in grads)
        return dx, dwt, None if proj_weight is None else dwp
    from pc3d.kernels.scan import fused_triton

    return (*fused_triton.conv_backward(x, wt, offs, pi, dout), None)


def _scan_fwd(be, u, u0, delta, A, B, C, D, bias, offs, reverse, stride, out, accumulate):
    """u (L, >= u0 + d) with the inputs in columns u0..; the others (compute dtype, contiguous) as in mixer_scan."""
    if be == "numba":
        from pc3d.kernels.scan import fused_numba

        arrays = (t.numpy() for t in (delta, A, B, C, D, bias, offs))
        fused_numba.scan_forward(u.numpy(), u0, *arrays, reverse, stride, out.numpy(), accumulate)
    else:
        from pc3d.kernels.scan import fused_triton

        fused_triton.scan_forward(u, u0, delta, A, B, C, D, bias, offs, reverse, stride, out, accumulate)


def _scan_proj_fwd(u, low, proj, A, B, C, D, bias, offs, reverse, stride, out, accumulate):
    """numba, ``n == 1``: :func:`_scan_fwd` with ``delta = low @ proj.T`` formed row by row inside the kernel."""
    from pc3d.kernels.scan import fused_numba

    ct = out.dtype
    parent, col = _rows(u, ct)
    arrays = (_c(t, ct).numpy() for t in (low, proj, A, B, C, D, bias))
    fused_numba.scan_forward_proj(
        parent.numpy(), col, *arrays, offs.numpy(), reverse, stride, out.numpy(), accumulate
    )


def _scan_bwd(be, u, u0, delta, A, B, C, D, bias, offs, reverse, stride, dout):
    if be == "numba":
        from pc3d.kernels.scan import fused_numba

        arrays = (t.numpy() for t in (delta, A, B, C, D, bias, offs))
        grads = fused_numba.scan_backward(u.numpy(), u0, *arrays, reverse, stride, dout.numpy())
        return tuple(torch.from_numpy(g) for g in grads)
    from pc3d.kernels.scan import fused_triton

    return fused_triton.scan_backward(u, u0, delta, A, B, C, D, bias, offs, reverse, stride, dout)


# ----------------------------------------------------------------------------- autograd


class _ConvSiluFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, be, x, weight, offs, reverse, stride):
        ct = _compute_dtype(x)
        xc, wt = _c(x, ct), _c(weight.t(), ct)
        out = torch.empty_like(xc)
        _conv_fwd(be, xc, wt, offs, reverse, stride, out, xc.shape[1])
        ctx.save_for_backward(x, weight, offs)
        ctx.flags = (be, reverse, stride)
        return out.to(x.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, dout):
        x, weight, offs = ctx.saved_tensors
        be, reverse, stride = ctx.flags
        ct = _compute_dtype(x)
        dx, dwt, _ = _conv_bwd(be, _c(x, ct), _c(weight.t(), ct), offs, reverse, stride, _c(dout, ct))
        return None, dx.to(x.dtype), dwt.t().to(weight.dtype), None, None, None


class _ConvSiluProjFn(torch.autograd.Function):
    """numba: ``y = silu(conv(x))`` and ``y @ proj.T`` in one pass; the backward adds the projection's gradient
    to ``y``'s and reduces ``proj``'s inside the conv's backward pass, so no ``(L, c)`` gradient is stored twice."""

    @staticmethod
    def forward(ctx, x, weight, proj, offs, reverse, stride):
        ct = _compute_dtype(x)
        xc, wt, wp = _c(x, ct), _c(weight.t(), ct), _c(proj, ct)
        out = torch.empty_like(xc)
        projected = _conv_proj_fwd(xc, wt, offs, reverse, stride, out, xc.shape[1], wp)
        ctx.save_for_backward(x, weight, proj, offs)
        ctx.flags = (reverse, stride)
        return out.to(x.dtype), projected.to(x.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, dout, dproj):
        x, weight, proj, offs = ctx.saved_tensors
        reverse, stride = ctx.flags
        ct = _compute_dtype(x)
        dx, dwt, dwp = _conv_bwd(
            "numba", _c(x, ct), _c(weight.t(), ct), offs, reverse, stride, _c(dout, ct), _c(proj, ct),
            _c(dproj, ct),
        )  # fmt: skip
        return dx.to(x.dtype), dwt.t().to(weight.dtype), dwp.to(proj.dtype), None, None, None


def _positions_and_inverse(offs: Tensor, length: int, orders: tuple[tuple[bool, int], ...]):
    """``(pis, qinv)``, both ``(len(orders), L)`` int64: every order's scan positions and their inverse."""
    pis = np.stack([_positions(offs, length, reverse, stride) for reverse, stride in orders])
    qinv = np.empty_like(pis)
    steps = np.arange(length, dtype=np.int64)
    for k in range(len(orders)):
        qinv[k, pis[k]] = steps
    return pis, qinv


def _conv_sum_fwd(x: Tensor, wt: Tensor, offs: Tensor, orders, out: Tensor) -> None:
    """x, out (L, c) compute dtype; wt (nd, k, c): the numba one-pass sum of every order's conv + SiLU."""
    from pc3d.kernels.scan import fused_numba

    pis, qinv = _positions_and_inverse(offs, x.shape[0], orders)
    fused_numba.conv_sum_forward(x.numpy(), wt.numpy(), offs.numpy(), pis, qinv, out.numpy())


class _ConvSiluSumFn(torch.autograd.Function):
    """numba only: the forward in one pass; the backward runs each order's conv backward, adding the input
    gradients into one buffer."""

    @staticmethod
    def forward(ctx, x, weight, offs, orders):
        ct = _compute_dtype(x)
        xc = _c(x, ct)
        out = torch.empty_like(xc)
        _conv_sum_fwd(xc, _c(weight.transpose(1, 2), ct), offs, orders, out)
        ctx.save_for_backward(x, weight, offs)
        ctx.orders = orders
        return out.to(x.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, dout):
        x, weight, offs = ctx.saved_tensors
        ct = _compute_dtype(x)
        xc, g = _c(x, ct), _c(dout, ct)
        dx, dw = None, []
        for k, (reverse, stride) in enumerate(ctx.orders):
            dx, dwt, _ = _conv_bwd("numba", xc, _c(weight[k].t(), ct), offs, reverse, stride, g, dx=dx)
            dw.append(dwt.t())
        return dx.to(x.dtype), torch.stack(dw).to(weight.dtype), None, None


class _MixerScanFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, be, u, delta, A, B, C, D, bias, offs, reverse, stride):
        ct = _compute_dtype(u)
        args = tuple(_c(t, ct) for t in (delta, A, B, C, D, bias))
        out = torch.empty_like(args[0])
        if not _OUTPUT_UNUSED.get():
            _scan_fwd(be, *_rows(u, ct), *args, offs, reverse, stride, out, False)
        ctx.save_for_backward(u, delta, A, B, C, D, bias, offs)
        ctx.flags = (be, reverse, stride)
        return out.to(u.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, dout):
        *inputs, offs = ctx.saved_tensors
        be, reverse, stride = ctx.flags
        ct = _compute_dtype(inputs[0])
        args = tuple(_c(t, ct) for t in inputs[1:])
        grads = _scan_bwd(be, *_rows(inputs[0], ct), *args, offs, reverse, stride, _c(dout, ct))
        return (None, *(g.to(t.dtype) for g, t in zip(grads, inputs)), None, None, None)


class _MixerScanProjFn(torch.autograd.Function):
    """numba, ``n == 1``: the scan with ``delta = low @ proj.T`` formed row by row in the forward pass, so no
    ``(L, d)`` ``delta`` is made (nor, in a recomputed forward whose output is unused, anything at all); the
    backward forms it once for the adjoint scan."""

    @staticmethod
    def forward(ctx, u, low, proj, A, B, C, D, bias, offs, reverse, stride):
        out = torch.empty(u.shape, dtype=_compute_dtype(u))
        if not _OUTPUT_UNUSED.get():
            _scan_proj_fwd(u, low, proj, A, B, C, D, bias, offs, reverse, stride, out, False)
        ctx.save_for_backward(u, low, proj, A, B, C, D, bias, offs)
        ctx.flags = (reverse, stride)
        return out.to(u.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx, dout):
        u, low, proj, *params, offs = ctx.saved_tensors
        reverse, stride = ctx.flags
        ct = _compute_dtype(u)
        lowc, projc = _c(low, ct), _c(proj, ct)
        args = (lowc @ projc.t(), *(_c(t, ct) for t in params))
        du, ddelta, *dparams = _scan_bwd("numba", *_rows(u, ct), *args, offs, reverse, stride, _c(dout, ct))
        grads = (du, ddelta @ projc, ddelta.t() @ lowc, *dparams)
        return (*(g.to(t.dtype) for g, t in zip(grads, (u, low, proj, *params))), None, None, None)


# ----------------------------------------------------------------------------- public ops


def _check(name: str, t: object, shape: tuple[int, ...], device: torch.device) -> Tensor:
    if not isinstance(t, Tensor) or not t.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor of shape {shape}, got {type(t).__name__}")
    if tuple(t.shape) != shape:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(t.shape)}")
    if t.device != device:
        raise ValueError(
            f"{name} is on {t.device} but the rows are on {device}; all tensors must share one device"
        )
    return t


def _check_out(out: Tensor | None, like: Tensor) -> None:
    if out is None:
        return
    if torch.is_grad_enabled() and (like.requires_grad or out.requires_grad):
        raise ValueError("out= is for inference only: call it under torch.no_grad()")
    ok = out.shape == like.shape and out.device == like.device and out.is_contiguous()
    if not ok or out.dtype != _compute_dtype(like):
        raise ValueError(
            f"out must be a contiguous {_compute_dtype(like)} tensor of shape {tuple(like.shape)} on {like.device}, "
            f"got {out.dtype} {tuple(out.shape)} on {out.device}"
        )


def conv_silu(
    x: Tensor,
    weight: Tensor,
    offsets: Tensor | None = None,
    *,
    reverse: bool = False,
    stride: int = 1,
    backend: str = "auto",
    out: Tensor | None = None,
    add_from: int | None = None,
    proj: Tensor | None = None,
) -> Tensor | tuple[Tensor, Tensor]:
    """``silu`` of the centred depthwise conv along the scan order of every sequence, on token-major rows.

    With ``pi`` the scan order and ``left = (k - 1) // 2``:
    ``out[pi[p], c] = silu(sum_j weight[c, j] * x[pi[p - left + j], c])`` over the taps inside the sequence
    (PyTorch ``padding='same'``), i.e. ``silu(sequence_depthwise_conv(x.T)).T``.

    Args:
        x: ``(L, c)`` rows packed by ``offsets (S+1,)`` (None: one sequence).
        weight: ``(c, k)``.
        reverse, stride: the scan order.
        backend: ``"auto"``, ``"numba"``, ``"triton"`` or ``"torch"``.
        out: inference only: a contiguous ``(L, c)`` buffer (float32, float64 for float64 ``x``) to write into.
        add_from: with ``out``: channels ``>= add_from`` are added to ``out`` instead of overwriting it.
        proj: ``(m, c)``: also return the rows' projection ``y @ proj.T`` ``(L, m)`` (the mixer's ``x_proj``).
            The numba kernels project each row as they write it, so ``y`` is not read again, and fold the
            projection's gradient into the conv's backward pass; elsewhere it is one matmul.

    Returns:
        ``y (L, c)`` in ``x``'s dtype (``out`` when given), and ``y @ proj.T`` after it when ``proj`` is given;
        differentiable in ``x``, ``weight`` and ``proj``.
    """
    if not isinstance(x, Tensor) or x.dim() != 2 or not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor (L, c), got {getattr(x, 'shape', type(x))}")
    length, nch = x.shape
    if not isinstance(weight, Tensor) or weight.dim() != 2 or weight.shape[0] != nch or weight.shape[1] < 1:
        raise ValueError(
            f"weight must have shape (c, k) = ({nch}, k >= 1), got {getattr(weight, 'shape', None)}"
        )
    _check("weight", weight, tuple(weight.shape), x.device)
    if proj is not None:
        if not isinstance(proj, Tensor) or proj.dim() != 2 or proj.shape[1] != nch or proj.shape[0] < 1:
            raise ValueError(
                f"proj must have shape (m, c) = (m >= 1, {nch}), got {getattr(proj, 'shape', None)}"
            )
        _check("proj", proj, tuple(proj.shape), x.device)
        if resolve_backend(backend, x.device) != "numba":
            kw = dict(reverse=reverse, stride=stride, backend=backend, out=out, add_from=add_from)
            y = conv_silu(x, weight, offsets, **kw)
            return y, y @ proj.t()
    check_scan_order(offsets, reverse, stride, 1, length, "x")
    be = resolve_backend(backend, x.device)
    if add_from is not None and (out is None or not 0 <= add_from <= nch):
        raise ValueError(f"add_from needs out= and 0 <= add_from <= {nch}, got {add_from}")
    _check_out(out, x)
    if be == "torch":
        offs = offsets if offsets is not None else torch.tensor([0, length])
        y = F.silu(sequence_depthwise_conv_ref(x.t()[None], weight, offs, reverse, stride)[0].t())
        if out is None:
            return y
        split = nch if add_from is None else add_from
        out[:, :split] = y[:, :split]
        out[:, split:] += y[:, split:]
        return out
    offs = _offsets(offsets, length)
    if out is None and proj is not None:
        return _ConvSiluProjFn.apply(x, weight, proj, offs, reverse, stride)
    if out is None:
        return _ConvSiluFn.apply(be, x, weight, offs, reverse, stride)
    ct = out.dtype
    args = (_c(x, ct), _c(weight.t(), ct), offs, reverse, stride, out, nch if add_from is None else add_from)
    if proj is not None:
        return out, _conv_proj_fwd(*args, _c(proj, ct))
    _conv_fwd(be, *args)
    return out


def conv_silu_sum(
    x: Tensor,
    weight: Tensor,
    offsets: Tensor | None,
    orders: Sequence[tuple[bool, int]],
    *,
    backend: str = "auto",
    out: Tensor | None = None,
) -> Tensor:
    """``sum_k conv_silu(x, weight[k], offsets, reverse=orders[k][0], stride=orders[k][1])``.

    On CPU (numba) it is one pass: each tile of rows reads its taps in every scan order, so ``x`` is read and
    the sum written once whatever the number of orders; elsewhere (Triton, torch) it adds up :func:`conv_silu`.

    Args:
        x: ``(L, c)`` rows packed by ``offsets (S+1,)`` (None: one sequence).
        weight: ``(nd, c, k)``: one centred depthwise conv per scan order.
        orders: ``nd`` scan orders ``(reverse, stride)``.
        backend: ``"auto"``, ``"numba"``, ``"triton"`` or ``"torch"``.
        out: inference only: a contiguous ``(L, c)`` buffer (float32, float64 for float64 ``x``) to write into.

    Returns:
        ``(L, c)`` in ``x``'s dtype (``out`` when given); differentiable in ``x`` and ``weight``.
    """
    if not isinstance(x, Tensor) or x.dim() != 2 or not x.is_floating_point():
        raise ValueError(f"x must be a floating-point tensor (L, c), got {getattr(x, 'shape', type(x))}")
    length, nch = x.shape
    orders = tuple((bool(reverse), int(stride)) for reverse, stride in orders)
    if not isinstance(weight, Tensor) or weight.dim() != 3 or weight.shape[1] != nch or weight.shape[2] < 1:
        raise ValueError(
            f"weight must have shape (orders, c, k) = ({len(orders)}, {nch}, k >= 1), "
            f"got {getattr(weight, 'shape', None)}"
        )
    if not orders or weight.shape[0] != len(orders):
        raise ValueError(
            f"orders: expected one (reverse, stride) per conv of weight ({weight.shape[0]}), got {orders}"
        )
    _check("weight", weight, tuple(weight.shape), x.device)
    for reverse, stride in orders:
        check_scan_order(offsets, reverse, stride, 1, length, "x")
    be = resolve_backend(backend, x.device)
    _check_out(out, x)
    if be != "numba":
        if out is None:
            y = conv_silu(x, weight[0], offsets, reverse=orders[0][0], stride=orders[0][1], backend=be)
            for k, (reverse, stride) in enumerate(orders[1:], 1):
                y = y + conv_silu(x, weight[k], offsets, reverse=reverse, stride=stride, backend=be)
            return y
        for k, (reverse, stride) in enumerate(orders):
            conv_silu(
                x, weight[k], offsets, reverse=reverse, stride=stride, backend=be, out=out,
                add_from=nch if k == 0 else 0,
            )  # fmt: skip
        return out
    offs = _offsets(offsets, length)
    if out is None:
        return _ConvSiluSumFn.apply(x, weight, offs, orders)
    ct = out.dtype
    _conv_sum_fwd(_c(x, ct), _c(weight.transpose(1, 2), ct), offs, orders, out)
    return out


def mixer_scan(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor,
    delta_bias: Tensor,
    offsets: Tensor | None = None,
    *,
    reverse: bool = False,
    stride: int = 1,
    backend: str = "auto",
    out: Tensor | None = None,
    accumulate: bool = False,
    delta_proj: Tensor | None = None,
) -> Tensor:
    """Selective scan of the mixer on token-major rows: ``selective_scan`` with softplus, ``D`` and no gate.

    Per channel ``c`` and scan step ``t``: ``Δ = softplus(δ_t + bias)``, ``h = exp(Δ·A) h + Δ·B_t·u_t``,
    ``y_t = C_t·h + D·u_t``; ``h = 0`` at every sequence start.

    Args:
        u, delta: ``(L, d)`` rows packed by ``offsets (S+1,)`` (None: one sequence).
        A: ``(d, n)``; B, C: ``(L, n)``; D, delta_bias: ``(d,)``.
        reverse, stride: the scan order (see :func:`pc3d.kernels.selective_scan`); outputs stay in row order.
        backend: ``"auto"``, ``"numba"``, ``"triton"`` or ``"torch"``.
        out: inference only: a contiguous ``(L, d)`` buffer (float32, float64 for float64 ``u``).
        accumulate: with ``out``: add ``y`` to ``out`` instead of overwriting it.
        delta_proj: ``(d, r)``: ``delta`` is then ``(L, r)`` and the scan uses ``delta @ delta_proj.T`` (Mamba's
            ``dt_proj``). With ``n == 1`` the numba forward forms it row by row, so the ``(L, d)`` product is not
            stored (the backward forms it once); elsewhere it is one matmul.

    Returns:
        ``y (L, d)`` in ``u``'s dtype (``out`` when given); every input gets gradients.
    """
    if not isinstance(u, Tensor) or u.dim() != 2 or not u.is_floating_point() or min(u.shape) < 1:
        raise ValueError(
            f"u must be a floating-point tensor (L, d) with L, d >= 1, got {getattr(u, 'shape', u)}"
        )
    length, dim = u.shape
    dev = u.device
    if delta_proj is not None:
        if not isinstance(delta_proj, Tensor) or delta_proj.dim() != 2 or delta_proj.shape[0] != dim:
            raise ValueError(
                f"delta_proj must have shape (d, r) = ({dim}, r), got {getattr(delta_proj, 'shape', None)}"
            )
        _check("delta_proj", delta_proj, tuple(delta_proj.shape), dev)
        _check("delta", delta, (length, delta_proj.shape[1]), dev)
        if not (A.dim() == 2 and A.shape[1] == 1 and resolve_backend(backend, dev) == "numba"):
            return mixer_scan(
                u, delta @ delta_proj.t(), A, B, C, D, delta_bias, offsets,
                reverse=reverse, stride=stride, backend=backend, out=out, accumulate=accumulate,
            )  # fmt: skip
    else:
        _check("delta", delta, (length, dim), dev)
    if not isinstance(A, Tensor) or A.dim() != 2 or A.shape[0] != dim or A.shape[1] < 1:
        raise ValueError(f"A must have shape (d, n) = ({dim}, n >= 1), got {getattr(A, 'shape', None)}")
    n = A.shape[1]
    _check("A", A, (dim, n), dev)
    _check("B", B, (length, n), dev)
    _check("C", C, (length, n), dev)
    _check("D", D, (dim,), dev)
    _check("delta_bias", delta_bias, (dim,), dev)
    check_scan_order(offsets, reverse, stride, 1, length, "u")
    be = resolve_backend(backend, dev)
    if accumulate and out is None:
        raise ValueError("accumulate=True needs out=")
    _check_out(out, u)
    if be == "torch":
        tr = lambda t: t.t()[None]  # noqa: E731
        y = selective_scan_ref(
            tr(u), tr(delta), A, tr(B), tr(C), D, None, delta_bias, True, offsets, reverse, stride
        )[0].t()
        if out is None:
            return y
        return out.add_(y) if accumulate else out.copy_(y)
    offs = _offsets(offsets, length)
    if delta_proj is not None:
        if out is None:
            return _MixerScanProjFn.apply(u, delta, delta_proj, A, B, C, D, delta_bias, offs, reverse, stride)
        _scan_proj_fwd(u, delta, delta_proj, A, B, C, D, delta_bias, offs, reverse, stride, out, accumulate)
        return out
    if out is None:
        return _MixerScanFn.apply(be, u, delta, A, B, C, D, delta_bias, offs, reverse, stride)
    ct = out.dtype
    args = tuple(_c(t, ct) for t in (delta, A, B, C, D, delta_bias))
    _scan_fwd(be, *_rows(u, ct), *args, offs, reverse, stride, out, accumulate)
    return out
