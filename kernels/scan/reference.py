"""Readable PyTorch reference of the selective scan (mamba-ssm ``selective_scan_ref`` semantics).

Extended with packed sequences (``offsets``), reverse scans and MEEPO's strided scan order. It is the
ground truth for every other backend, supports float64, and is differentiable through plain autograd.
It materialises ``(b, d, L, n)`` tensors and runs a Python loop over ``L``: correct, not fast.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["scan_order", "selective_scan_ref"]


def scan_order(
    length: int, stride: int = 1, reverse: bool = False, device: torch.device | None = None
) -> Tensor:
    """Scan order of one sequence: ``pi (length,)`` int64, scan position ``p`` -> original index ``pi[p]``.

    Strided order: phase ``r`` holds indices ``r, r+s, r+2s, ...``; it has ``m_r = ceil((L-r)/s)``
    tokens and starts at scan position ``P_r = sum_{q<r} m_q``. With ``L = q*s + rem`` the first ``rem`` phases
    have ``q+1`` tokens and the others ``q``. Reverse is the reversal of that sequence: ``pi_rs(p) = pi_s(L-1-p)``.
    """
    p = torch.arange(length, device=device, dtype=torch.int64)
    q, rem = divmod(length, stride)
    long_part = rem * (q + 1)  # scan positions covered by the phases of length q + 1
    in_long = p < long_part
    p_short = (p - long_part).clamp_min(0)
    q_safe = max(q, 1)
    phase = torch.where(in_long, p // (q + 1), rem + p_short // q_safe)
    k = torch.where(in_long, p % (q + 1), p_short % q_safe)
    pi = phase + stride * k
    return pi.flip(0) if reverse else pi


def selective_scan_ref(
    u: Tensor,
    delta: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    z: Tensor | None = None,
    delta_bias: Tensor | None = None,
    delta_softplus: bool = False,
    offsets: Tensor | None = None,
    reverse: bool = False,
    stride: int = 1,
    return_last_state: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Reference selective scan; arguments are assumed validated (see :func:`pc3d.kernels.selective_scan`).

    Shapes: ``u, delta, z (b, d, L)``, ``A (d, n)``, ``B, C (b, n, L)`` or ``(b, g, n, L)``,
    ``D, delta_bias (d,)``, ``offsets (S+1,)`` (``b == 1``). Returns ``y (b, d, L)`` in ``u``'s dtype and, with
    ``return_last_state``, the final states ``(b, d, n)`` (or ``(S, d, n)`` with offsets).
    Computes in float64 for float64 inputs, else in float32.
    """
    dtype_in = u.dtype
    ct = torch.float64 if dtype_in == torch.float64 else torch.float32
    bsz, dim, length = u.shape
    u, delta, A, B, C = (t.to(ct) for t in (u, delta, A, B, C))
    if B.dim() == 3:
        B, C = B.unsqueeze(1), C.unsqueeze(1)
    groups = B.shape[1]
    B = B.repeat_interleave(dim // groups, dim=1)  # (b, d, n, L)
    C = C.repeat_interleave(dim // groups, dim=1)
    if delta_bias is not None:
        delta = delta + delta_bias.to(ct)[:, None]
    if delta_softplus:
        delta = torch.nn.functional.softplus(delta)

    # Global scan order: every sequence is scanned on its own, in its own (strided / reverse) order.
    bounds = [0, length] if offsets is None else [int(v) for v in offsets.tolist()]
    perm_parts, starts, ends = [], [], []
    for s0, e0 in zip(bounds[:-1], bounds[1:]):
        pos = sum(part.numel() for part in perm_parts)
        perm_parts.append(s0 + scan_order(e0 - s0, stride, reverse, device=u.device))
        starts.append(pos)
        ends.append(pos + e0 - s0)
    perm = torch.cat(perm_parts)

    u_s, delta_s = u[..., perm], delta[..., perm]
    B_s, C_s = B[..., perm], C[..., perm]
    delta_a = torch.exp(torch.einsum("bdl,dn->bdln", delta_s, A))  # a_{t,n} = exp(Δ_t A_n)
    delta_b_u = torch.einsum("bdl,bdnl,bdl->bdln", delta_s, B_s, u_s)  # Δ_t B_{t,n} u_t

    start_set = set(starts)
    state = u.new_zeros(bsz, dim, A.shape[1])
    ys = []
    end_of = {e - 1: i for i, (s0, e) in enumerate(zip(starts, ends)) if e > s0}  # empty sequences stay zero
    last_states = [u.new_zeros(bsz, dim, A.shape[1]) for _ in ends]
    # unbind (not indexing) per step: its backward is one stack instead of L full-size scatters
    steps = zip(delta_a.unbind(2), delta_b_u.unbind(2), C_s.unbind(3))
    for p, (a_p, bu_p, c_p) in enumerate(steps):
        if p in start_set:
            state = torch.zeros_like(state)
        state = a_p * state + bu_p
        ys.append(torch.einsum("bdn,bdn->bd", state, c_p))
        if p in end_of:
            last_states[end_of[p]] = state
    y_s = torch.stack(ys, dim=-1)  # (b, d, L) in scan order
    y = torch.empty_like(y_s).index_copy(-1, perm, y_s)  # y[pi] = y_scan
    if D is not None:
        y = y + u * D.to(ct)[:, None]
    if z is not None:
        y = y * torch.nn.functional.silu(z.to(ct))
    y = y.to(dtype_in)
    if not return_last_state:
        return y
    last = torch.stack(last_states, dim=1)  # (b, S, d, n)
    last = last[0] if offsets is not None else last[:, 0]
    return y, last.to(dtype_in)
