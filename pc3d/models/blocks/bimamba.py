"""Causal-free strided bidirectional Mamba mixer (MEEPO) on packed, serialized point clouds.

Every direction is a permutation ``pi`` of the rows that keeps each cloud inside its own
segment (meepo.md §5, applied per cloud): ``forward`` (serialized order), ``reverse``,
``strided`` (0, s, 2s, ..., 1, 1+s, ... within each cloud) and ``strided-reverse`` (the strided
sequence reversed). All directions are gathered at once, go through a centred (non-causal)
depthwise conv that zero-pads at cloud edges, and are scanned in ONE call of
:func:`pc3d.kernels.selective_scan.selective_scan` with the directions stacked on the channel
axis (B/C grouped by direction) and ``offsets`` so that the state resets at every cloud start.
The outputs are scattered back (``y[pi] = y_dir``) and summed over directions; the gate branch
``z`` follows the MambaVision-style concatenation ``out_proj(cat[sum y, sum silu(conv(z))])``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pc3d.kernels import selective_scan
from pc3d.models.blocks.common import segment_positions

DIRECTIONS = ("forward", "reverse", "strided", "strided-reverse")


def direction_permutation(offsets: Tensor, direction: str, stride: int = 2) -> Tensor:
    """Scan order ``pi (N,)`` for packed segments: scan position ``p`` reads row ``pi[p]``.

    ``offsets (B+1,)``; ``pi`` maps each segment ``[a, e)`` onto itself.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction: expected one of {DIRECTIONS}, got {direction!r}")
    n = int(offsets[-1])
    device = offsets.device
    idx = torch.arange(n, device=device)
    if direction == "forward":
        return idx
    local, length = segment_positions(offsets)
    start = idx - local
    if direction == "reverse":
        return start + length - 1 - local
    if stride < 1:
        raise ValueError(f"stride: expected an integer >= 1, got {stride}")
    counts = offsets[1:] - offsets[:-1]
    phases = torch.arange(stride, device=device)
    m = ((counts[:, None] - phases[None, :] + stride - 1) // stride).clamp_min(0)  # (B, s) tokens per phase
    phase_start = torch.cumsum(m, 1) - m  # (B, s)
    cloud = torch.repeat_interleave(torch.arange(counts.numel(), device=device), counts)
    pos = start + phase_start[cloud, local % stride] + local // stride  # scan position of every row
    pi = torch.empty_like(idx)
    pi[pos] = idx
    if direction == "strided-reverse":
        pi = pi[start + length - 1 - local]
    return pi


def _fp32(x: Tensor) -> Tensor:
    """Contiguous, and promoted to float32 when in half precision (autocast)."""
    return (x.float() if x.dtype in (torch.float16, torch.bfloat16) else x).contiguous()


def segment_depthwise_conv(x: Tensor, weight: Tensor, offsets: Tensor) -> Tensor:
    """Centred depthwise conv along the rows of ``x (D, N, C)`` with zero padding at segment edges.

    ``weight (D, C, k)``: output ``p`` sees rows ``p - (k-1)//2 .. p + k//2`` (PyTorch ``padding='same'``)
    of the same segment only. Returns channel-major ``(D, C, N)``.

    The segments are laid out with ``k - 1`` zero rows between them and convolved in one grouped
    ``conv1d`` call, so nothing leaks across segment edges.
    """
    nd, n, c = x.shape
    k = weight.shape[-1]
    left = (k - 1) // 2
    counts = offsets[1:] - offsets[:-1]
    cloud = torch.repeat_interleave(torch.arange(counts.numel(), device=x.device), counts)
    dest = torch.arange(n, device=x.device) + cloud * (k - 1) + left  # row -> position in the padded layout
    length = n + counts.numel() * (k - 1)
    buf = x.new_zeros(nd, length, c)
    buf[:, dest] = x
    buf = buf.transpose(1, 2).reshape(1, nd * c, length)
    out = F.conv1d(buf, weight.reshape(nd * c, 1, k), groups=nd * c)  # (1, D*C, length - k + 1)
    return out.reshape(nd, c, -1)[:, :, dest - left]


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
        backend: passed to ``selective_scan``.

    ``forward(x (N, C), offsets (B+1,), index (D, N), inverse (D, N) | None) -> (N, C)`` where
    ``index[d]`` gives, for every scan position of direction ``d``, the row of ``x`` it reads (build
    it with :meth:`scan_index`) and ``inverse[d]`` its inverse permutation (computed when ``None``).
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
        self.channels, self.d_state, self.d_conv, self.stride = channels, d_state, d_conv, stride
        self.directions = directions
        self.backend = backend
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

    def scan_index(self, order: Tensor, offsets: Tensor) -> Tensor:
        """``(D, N)`` rows read at each scan position, from the serialized ``order (N,)``."""
        return torch.stack([order[direction_permutation(offsets, d, self.stride)] for d in self.directions])

    def forward(self, x: Tensor, offsets: Tensor, index: Tensor, inverse: Tensor | None = None) -> Tensor:
        n, nd = x.shape[0], len(self.directions)
        if inverse is None:
            inverse = torch.empty_like(index).scatter_(
                1, index, torch.arange(n, device=x.device).expand(nd, n)
            )
        xz = self.in_proj(x)
        if torch.is_grad_enabled():  # all directions in one scan call
            out = self._directions(xz, offsets, index, inverse, slice(0, nd))
        else:  # inference: one direction at a time, a quarter of the peak memory for four directions
            out = self._directions(xz, offsets, index[:1], inverse[:1], slice(0, 1))
            for k in range(1, nd):
                out = out + self._directions(
                    xz, offsets, index[k : k + 1], inverse[k : k + 1], slice(k, k + 1)
                )
        return self.out_proj(out)

    def _directions(self, xz: Tensor, offsets: Tensor, index: Tensor, inverse: Tensor, sel: slice) -> Tensor:
        """Sum over the directions ``sel`` of ``cat[y, silu(conv(z))]`` in row order, ``(N, 2d)``."""
        n = xz.shape[0]
        nd, d, r, ns = index.shape[0], self.d_inner, self.dt_rank, self.d_state
        xz = F.silu(
            segment_depthwise_conv(xz[index], self.conv_weight[sel], offsets)
        )  # (D, 2d, N) scan order
        xs, zs = xz[:, :d], xz[:, d:]
        dbc = torch.einsum("kcn,koc->kon", xs, self.x_proj_weight[sel])  # (D, r + 2n, N)
        dt = torch.einsum("krn,kcr->kcn", dbc[:, :r], self.dt_proj_weight[sel])  # (D, d, N)
        y = selective_scan(  # in fp32 also under autocast (the recurrence is precision-sensitive)
            _fp32(xs.reshape(1, nd * d, n)),
            _fp32(dt.reshape(1, nd * d, n)),
            -torch.exp(self.A_log[sel]).reshape(nd * d, ns),
            _fp32(dbc[:, r : r + ns].unsqueeze(0)),  # B (1, D, n, N): one group per direction
            _fp32(dbc[:, r + ns :].unsqueeze(0)),
            self.D[sel].reshape(nd * d),
            z=None,
            delta_bias=self.dt_proj_bias[sel].reshape(nd * d),
            delta_softplus=True,
            offsets=offsets,
            backend=self.backend,
        )  # (1, D*d, N)
        yz = torch.cat([y.reshape(nd, d, n).to(zs.dtype), zs], 1).transpose(1, 2)  # (D, N, 2d) in scan order
        out = yz[0][inverse[0]]  # y[pi] = y_dir, i.e. y = y_dir[pi^-1], summed over directions
        for k in range(1, nd):
            out = out + yz[k][inverse[k]]
        return out

    def extra_repr(self) -> str:
        return (
            f"channels={self.channels}, d_inner={self.d_inner}, d_state={self.d_state}, d_conv={self.d_conv}, "
            f"dt_rank={self.dt_rank}, directions={self.directions}, stride={self.stride}"
        )
