"""Causal-free strided bidirectional Mamba mixer (MEEPO) on packed, serialized point clouds.

The rows are gathered once into the block's serialization order (clouds stay in their segments,
``offsets`` unchanged). Every direction is then a scan order *of that sequence*, expressed as
``(reverse, stride)`` of the kernels: ``forward`` (serialized order), ``reverse``, ``strided``
(0, s, 2s, ..., 1, 1+s, ... within each cloud) and ``strided-reverse``. Per direction the
centred (non-causal) depthwise conv + SiLU runs along that order, zero-padded at cloud edges, and the
SSM runs with its state reset at every cloud start. Both return rows in serialized order, so directions
are summed without any permuted copy, and one gather at the end returns the rows to the caller's order.
The gate branch ``z`` follows the MambaVision-style concatenation ``out_proj(cat[sum y, sum silu(conv(z))])``.

Two implementations compute the same function:

- the fused path (``backend="auto"``, the default, or ``"fused"``): token-major ``(N, channels)`` rows
  straight from ``in_proj``; the gate branch's conv + SiLU of every direction summed in one pass
  (:func:`pc3d.kernels.scan.fused.conv_silu_sum`); per direction, one pass for the ``x`` stream's conv + SiLU
  and ``x_proj`` (:func:`~pc3d.kernels.scan.fused.conv_silu`) and one for ``dt_proj``, softplus,
  discretisation, recurrence and ``D`` skip (:func:`~pc3d.kernels.scan.fused.mixer_scan`); numba on CPU and
  Triton on CUDA;
- the reference path (``backend`` = ``"torch"``, ``"numba"``, ``"triton"`` or ``"mamba_ssm"``): channel-major
  ``(1, channels, N)`` rows through :func:`pc3d.kernels.sequence_depthwise_conv` and
  :func:`pc3d.kernels.selective_scan` with that backend.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from pc3d.kernels import selective_scan, sequence_depthwise_conv
from pc3d.kernels.scan.fused import conv_silu, conv_silu_sum, mixer_scan, recomputing_for_backward

DIRECTIONS = ("forward", "reverse", "strided", "strided-reverse")
BACKENDS = ("auto", "fused", "torch", "numba", "triton", "mamba_ssm")


def _recompute_without_scan_output():
    """``checkpoint`` contexts for a direction: the first forward as usual; the recompute in backward ends in
    the scan, whose output it discards, so the scan only records its inputs."""
    return contextlib.nullcontext(), recomputing_for_backward()


def _compute_dtype(x: Tensor) -> torch.dtype:
    """float64 for float64 rows, else float32 (also under autocast: the recurrence is precision-sensitive)."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _fp32(x: Tensor) -> Tensor:
    """Contiguous, and promoted to float32 when in half precision (autocast)."""
    return (x.float() if x.dtype in (torch.float16, torch.bfloat16) else x).contiguous()


class BiMamba(nn.Module):
    """Causal-free, strided, bidirectional Mamba mixer on packed serialized rows.

    Args:
        channels: model width ``C``.
        d_state: SSM state size ``n``.
        d_conv: width of the centred depthwise conv.
        expand: ``in_proj`` maps ``C`` to ``expand * C``, split into equal ``x`` and ``z`` streams.
        dt_rank: rank of the ``dt`` projection (``"auto"`` = ``ceil(C / 16)``).
        directions: any of ``forward``, ``reverse``, ``strided``, ``strided-reverse`` (each once).
        stride: stride of the strided directions.
        dt_min, dt_max, dt_init_floor: Mamba's ``dt`` bias initialisation range.
        backend: ``"auto"``/``"fused"``: the token-major fused kernels (numba on CPU, Triton on CUDA); or a
            ``selective_scan`` backend (``"torch"``, ``"numba"``, ``"triton"``, ``"mamba_ssm"``) for the
            channel-major reference path.
        recompute: when autograd records the forward, keep only the shared ``in_proj`` output and recompute each
            direction's conv, SiLU, projections and scan in the backward pass (Mamba's
            ``checkpoint_lvl``). Saves each direction's activations (fused path: its ``(N, d)`` conv output
            and ``(N, r + 2n)`` projection; reference path: several ``(d, N)`` ones) for one extra run of the
            directions' convs (the recomputed scan only records its inputs).

    ``forward(x (N, C), offsets (B+1,), order (N,), inverse (N,)) -> (N, C)``: the mixer scans every
    cloud along ``order`` in each direction. Without autograd (fused path) the mixer first sums
    ``silu(conv(z))`` over the directions in one pass (holding ``z`` and the sum, ``(N, d)`` each) and projects
    the sum by its half of ``out_proj`` (``(N, C)``); then it holds the ``x`` stream, the current direction's
    ``silu(conv(x))`` and the running sum of ``y`` (``(N, d)`` each; ``dt`` is formed row by row inside the
    scan): per-direction buffers live one at a time, and nothing scales with the number of directions.
    With autograd the summed gate branch keeps only ``z`` for its backward.
    """

    def __init__(
        self,
        channels: int,
        d_state: int = 1,
        d_conv: int = 4,
        expand: float = 3.0,
        dt_rank: int | str = "auto",
        directions: Sequence[str] = DIRECTIONS,
        stride: int = 2,
        dt_min: float = 1e-3,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
        backend: str = "auto",
        recompute: bool = True,
    ) -> None:
        super().__init__()
        directions = tuple(directions)
        if (
            not directions
            or len(set(directions)) != len(directions)
            or any(d not in DIRECTIONS for d in directions)
        ):
            raise ValueError(f"directions: expected distinct names from {DIRECTIONS}, got {directions}")
        inner2 = int(round(expand * channels))
        if inner2 % 2:
            raise ValueError(f"expand: expand * channels must be even, got {expand} * {channels}")
        if d_state < 1 or d_conv < 1 or stride < 1:
            raise ValueError(f"d_state, d_conv, stride: expected >= 1, got {d_state}, {d_conv}, {stride}")
        if backend not in BACKENDS:
            raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
        self.channels, self.d_state, self.d_conv, self.stride = channels, d_state, d_conv, stride
        self.directions = directions
        self.backend, self.recompute = backend, recompute
        self.d_inner = d = inner2 // 2
        self.dt_rank = r = math.ceil(channels / 16) if dt_rank == "auto" else int(dt_rank)
        nd = len(directions)
        self.in_proj = nn.Linear(channels, 2 * d, bias=False)
        self.out_proj = nn.Linear(2 * d, channels, bias=False)
        # per-direction parameters, stacked on a leading direction axis
        self.conv_weight = nn.Parameter(torch.empty(nd, 2 * d, d_conv))  # x and z streams
        self.x_proj_weight = nn.Parameter(torch.empty(nd, r + 2 * d_state, d))
        self.dt_proj_weight = nn.Parameter(torch.empty(nd, d, r))
        self.dt_proj_bias = nn.Parameter(torch.empty(nd, d))
        self.A_log = nn.Parameter(
            torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(nd, d, 1)
        )
        self.D = nn.Parameter(torch.ones(nd, d))
        self._dt = (dt_min, dt_max, dt_init_floor)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        dt_min, dt_max, floor = self._dt
        bound = 1.0 / math.sqrt(self.d_conv)  # Conv1d default (fan_in = k for depthwise)
        nn.init.uniform_(self.conv_weight, -bound, bound)
        nn.init.uniform_(self.x_proj_weight, -1 / math.sqrt(self.d_inner), 1 / math.sqrt(self.d_inner))
        nn.init.uniform_(self.dt_proj_weight, -(self.dt_rank**-0.5), self.dt_rank**-0.5)
        with torch.no_grad():
            dt = torch.exp(
                torch.rand_like(self.dt_proj_bias) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)
            ).clamp_min(floor)
            self.dt_proj_bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus

    def scan_order(self, direction: str) -> tuple[bool, int]:
        """``(reverse, stride)`` of a direction, as understood by the scan and conv kernels."""
        return direction.endswith("reverse"), self.stride if direction.startswith("strided") else 1

    def direction(self, xz: Tensor, k: int, offsets: Tensor, inplace: bool = False) -> tuple[Tensor, Tensor]:
        """Direction ``k`` on ``xz (1, 2d, N)`` in serialized order -> ``(y (1, d, N), silu(conv(z)) (1, d, N))``."""
        d, r, ns = self.d_inner, self.dt_rank, self.d_state
        reverse, stride = self.scan_order(self.directions[k])
        conv_backend = "torch" if self.backend == "torch" else "auto"
        conv = sequence_depthwise_conv(
            xz, self.conv_weight[k], offsets, reverse=reverse, stride=stride, backend=conv_backend
        )
        conv = F.silu(conv, inplace=inplace)
        xs, zs = conv[:, :d], conv[:, d:]  # (1, d, N) each
        dbc = torch.mm(self.x_proj_weight[k], xs[0])  # (r + 2n, N)
        dt = torch.mm(self.dt_proj_weight[k], dbc[:r])  # (d, N)
        y = selective_scan(  # in fp32 also under autocast (the recurrence is precision-sensitive)
            _fp32(xs),
            _fp32(dt.unsqueeze(0)),
            -torch.exp(self.A_log[k]),
            _fp32(dbc[None, r : r + ns]),
            _fp32(dbc[None, r + ns :]),
            self.D[k],
            z=None,
            delta_bias=self.dt_proj_bias[k],
            delta_softplus=True,
            offsets=offsets,
            reverse=reverse,
            stride=stride,
            backend=self.backend,
        ).to(zs.dtype)
        return y, zs

    def forward(self, x: Tensor, offsets: Tensor, order: Tensor, inverse: Tensor) -> Tensor:
        """``x (N, C)`` rows packed by ``offsets (B+1,)``; ``order (N,)`` the serialization (rows of a
        cloud stay inside its segment) and ``inverse (N,)`` its inverse permutation -> ``(N, C)``."""
        if self.backend in ("auto", "fused"):
            if torch.is_grad_enabled():
                return self._forward_fused_train(x, offsets, order, inverse)
            return self._forward_fused_infer(x, offsets, order, inverse)
        return self._forward_reference(x, offsets, order, inverse)

    def _scan_args(self, k: int, xs: Tensor, dbc: Tensor) -> tuple[Tensor, ...]:
        """``mixer_scan`` inputs after ``u = xs (N, d)`` and ``delta``: ``A (d, n), B, C (N, n), D, bias (d,)``."""
        r, ns = self.dt_rank, self.d_state
        return (
            -torch.exp(self.A_log[k]),
            dbc[:, r : r + ns],
            dbc[:, r + ns :],
            self.D[k],
            self.dt_proj_bias[k],
        )

    def scan_orders(self) -> list[tuple[bool, int]]:
        """Every direction's ``(reverse, stride)``."""
        return [self.scan_order(name) for name in self.directions]

    def direction_fused(self, xs_in: Tensor, k: int, offsets: Tensor) -> Tensor:
        """The ``x`` stream of direction ``k`` on token-major ``xs_in (N, d)`` -> ``y (N, d)``."""
        d, r = self.d_inner, self.dt_rank
        reverse, stride = self.scan_order(self.directions[k])
        xs, dbc = conv_silu(  # dbc (N, r + 2n): x_proj of each row of xs as it is written
            xs_in,
            self.conv_weight[k, :d],
            offsets,
            reverse=reverse,
            stride=stride,
            proj=self.x_proj_weight[k],
        )
        return mixer_scan(
            xs, dbc[:, :r], *self._scan_args(k, xs, dbc), offsets, reverse=reverse, stride=stride,
            delta_proj=self.dt_proj_weight[k],
        )  # fmt: skip

    def _out(self, y_sum: Tensor, z_sum: Tensor, inverse: Tensor) -> Tensor:
        d = self.d_inner
        w = self.out_proj.weight  # (C, 2d): out_proj(cat[y, z]) without materialising the cat
        return torch.addmm(torch.mm(y_sum, w[:, :d].t()), z_sum, w[:, d:].t()).index_select(0, inverse)

    def _forward_fused_train(self, x: Tensor, offsets: Tensor, order: Tensor, inverse: Tensor) -> Tensor:
        """Training: ``sum silu(conv(z))`` over the directions in one op (it keeps only ``z``), then each
        direction's ``x`` stream, recomputed in the backward pass when ``recompute``."""
        ct = _compute_dtype(x)
        with torch.autocast(x.device.type, enabled=False):  # the recurrence is precision-sensitive
            rows = x.index_select(0, order).to(ct)  # (N, C) in serialized order
            w_in = self.in_proj.weight.to(ct)
            d = self.d_inner
            xs_in, z_in = torch.mm(rows, w_in[:d].t()), torch.mm(rows, w_in[d:].t())  # (N, d) each
            z_sum = conv_silu_sum(z_in, self.conv_weight[:, d:], offsets, self.scan_orders())
            y_sum = None
            for k in range(len(self.directions)):
                if self.recompute:
                    y = checkpoint(
                        self.direction_fused, xs_in, k, offsets, use_reentrant=False, preserve_rng_state=False,
                        context_fn=_recompute_without_scan_output,
                    )  # fmt: skip
                else:
                    y = self.direction_fused(xs_in, k, offsets)
                y_sum = y if y_sum is None else y_sum + y
            return self._out(y_sum, z_sum, inverse)

    def _forward_fused_infer(self, x: Tensor, offsets: Tensor, order: Tensor, inverse: Tensor) -> Tensor:
        """Inference: the ``z`` stream first (``silu(conv(z))`` summed over the directions in one op and projected
        by its half of ``out_proj``, so only ``(N, C)`` of it stays), then the ``x`` stream one direction at a
        time into the running sum of ``y``."""
        d, r = self.d_inner, self.dt_rank
        ct = _compute_dtype(x)
        with torch.autocast(x.device.type, enabled=False):
            rows = x.index_select(0, order).to(ct)  # (N, C) in serialized order
            w_in = self.in_proj.weight.to(ct)
            z = torch.mm(rows, w_in[d:].t())  # (N, d)
            z_sum = conv_silu_sum(
                z, self.conv_weight[:, d:], offsets, self.scan_orders(), out=torch.empty_like(z)
            )
            del z
            w_out = self.out_proj.weight.to(ct)  # (C, 2d): out_proj(cat[y, z]) without materialising the cat
            out = torch.mm(z_sum, w_out[:, d:].t())  # (N, C): the gate branch's share, so z_sum can go
            del z_sum
            xs_in = torch.mm(rows, w_in[:d].t())  # (N, d)
            del rows
            xs = torch.empty_like(xs_in)  # silu(conv(x)) of the current direction
            y_sum = torch.empty_like(xs_in)
            for k in range(len(self.directions)):
                reverse, stride = self.scan_order(self.directions[k])
                wx = self.conv_weight[k, :d].to(ct)
                _, dbc = conv_silu(  # dbc (N, r + 2n): x_proj of each row of xs as it is written
                    xs_in,
                    wx,
                    offsets,
                    reverse=reverse,
                    stride=stride,
                    out=xs,
                    proj=self.x_proj_weight[k].to(ct),
                )
                args = (t.to(ct) for t in self._scan_args(k, xs, dbc))
                mixer_scan(
                    xs, dbc[:, :r], *args, offsets, reverse=reverse, stride=stride, out=y_sum, accumulate=k > 0,
                    delta_proj=self.dt_proj_weight[k].to(ct),
                )  # fmt: skip
            del xs_in, xs
            return torch.addmm(out, y_sum, w_out[:, :d].t()).index_select(0, inverse)

    def _forward_reference(self, x: Tensor, offsets: Tensor, order: Tensor, inverse: Tensor) -> Tensor:
        # Without autograd, buffers of (d, N) floats are reused in place: at N ~ 1e5 each is tens of MB,
        # and every fresh one costs page faults as well as memory.
        inplace = not torch.is_grad_enabled()
        recompute = self.recompute and not inplace
        xz = torch.mm(self.in_proj.weight, x.index_select(0, order).t()).unsqueeze(
            0
        )  # (1, 2d, N) in serialized order
        y_sum = z_sum = None
        for k in range(len(self.directions)):
            if recompute:
                y, zs = checkpoint(
                    self.direction, xz, k, offsets, use_reentrant=False, preserve_rng_state=False
                )
            else:
                y, zs = self.direction(xz, k, offsets, inplace)
            if y_sum is None:
                y_sum, z_sum = y, zs
            elif inplace:
                y_sum.add_(y)
                z_sum.add_(zs)
            else:
                y_sum, z_sum = y_sum + y, z_sum + zs
        return self._out(y_sum[0].t(), z_sum[0].t(), inverse)

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, d_inner={self.d_inner}, d_state={self.d_state}, d_conv={self.d_conv}, "
            f"dt_rank={self.dt_rank}, directions={self.directions}, stride={self.stride}, "
            f"backend={self.backend!r}, recompute={self.recompute}"
        )
