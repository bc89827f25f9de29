"""The MEEPO mixer against a brute-force per-cloud, per-direction reference (gather, conv1d, scan loop)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pc3d.kernels.scan import scan_order
from pc3d.models.blocks.bimamba import DIRECTIONS, BiMamba

COUNTS = [7, 1, 0, 12, 5]


def _offsets(counts):
    return torch.tensor([0] + torch.tensor(counts).cumsum(0).tolist())


def _scan_loop(u, dt, A, B, C, D):
    """Plain per-step scan of one sequence: u, dt (d, L), A (d, n), B, C (n, L)."""
    h = torch.zeros_like(A)
    ys = []
    for t in range(u.shape[1]):
        h = torch.exp(dt[:, t, None] * A) * h + dt[:, t, None] * B[None, :, t] * u[:, t, None]
        ys.append((h * C[None, :, t]).sum(1) + D * u[:, t])
    return torch.stack(ys, 1)


def _bimamba_reference(m: BiMamba, x, offsets, order):
    """Per cloud, per direction: gather, conv1d, scan loop, scatter back; sum directions; out_proj."""
    d, r, ns = m.d_inner, m.dt_rank, m.d_state
    xz_all = m.in_proj(x)
    out = torch.zeros(x.shape[0], 2 * d, dtype=x.dtype)
    for a, e in zip(offsets[:-1].tolist(), offsets[1:].tolist()):
        n = e - a
        if n == 0:
            continue
        rows = order[a:e]  # this cloud's rows in serialized order
        for k, name in enumerate(m.directions):
            s = m.stride if name.startswith("strided") else 1
            seq = rows[scan_order(n, s, reverse=name.endswith("reverse"))]
            xz = xz_all[seq].T[None]  # (1, 2d, n)
            xz = F.silu(F.conv1d(xz, m.conv_weight[k][:, None, :], padding="same", groups=2 * d))[0]
            xs, zs = xz[:d], xz[d:]
            dbc = m.x_proj_weight[k] @ xs  # (r + 2n, L)
            dt = F.softplus(m.dt_proj_weight[k] @ dbc[:r] + m.dt_proj_bias[k][:, None])
            y = _scan_loop(xs, dt, -torch.exp(m.A_log[k]), dbc[r : r + ns], dbc[r + ns :], m.D[k])
            out[seq] += torch.cat([y, zs]).T
    return m.out_proj(out)


@pytest.mark.parametrize("directions", [DIRECTIONS, ("forward", "reverse"), ("strided-reverse",)])
def test_bimamba_matches_per_cloud_reference(directions):
    torch.manual_seed(1)
    m = BiMamba(8, d_state=2, d_conv=4, expand=3.0, directions=directions, stride=3).double()
    with torch.no_grad():  # make the state matter (larger dt)
        m.dt_proj_bias.add_(1.0)
    offsets = _offsets(COUNTS)
    n = int(offsets[-1])
    x = torch.randn(n, 8, dtype=torch.float64)
    order = torch.cat([a + torch.randperm(c) for a, c in zip(offsets[:-1].tolist(), COUNTS)])
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(n)
    params = list(m.parameters())
    ref = _bimamba_reference(m, x, offsets, order)
    ref_grads = torch.autograd.grad(ref.square().sum(), params)
    assert all(g.abs().sum() > 0 for g in ref_grads)
    for backend in ("auto", "numba", "torch"):
        m.backend = backend
        out = m(x, offsets, order, inverse)
        torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-7)
        for g, want in zip(torch.autograd.grad(out.square().sum(), params), ref_grads):
            torch.testing.assert_close(g, want, rtol=1e-6, atol=1e-7)
        with torch.no_grad():
            torch.testing.assert_close(m(x, offsets, order, inverse), ref, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("backend", ["auto", "numba", "torch"])
def test_bimamba_recompute_gives_the_stored_activation_gradients(backend):
    """``recompute`` (directions re-run in backward) changes memory, not values or gradients."""
    torch.manual_seed(2)
    m = BiMamba(8, d_state=1, d_conv=4, expand=3.0, stride=2, backend=backend).double()
    offsets = _offsets(COUNTS)
    n = int(offsets[-1])
    order = torch.cat([a + torch.randperm(c) for a, c in zip(offsets[:-1].tolist(), COUNTS)])
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(n)
    x0 = torch.randn(n, 8, dtype=torch.float64)
    results, saved = [], []
    for recompute in (False, True):
        m.recompute = recompute
        m.zero_grad()
        x = x0.clone().requires_grad_()
        storages: dict[int, int] = {}

        def pack(t, storages=storages):
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = m(x, offsets, order, inverse)
        saved.append(sum(storages.values()))
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
        results.append((out.detach(), x.grad, [p.grad.clone() for p in m.parameters()]))
    (o0, gx0, gp0), (o1, gx1, gp1) = results
    per_direction = n * m.d_inner * 8  # each direction's silu(conv(x)) rows, float64
    assert saved[0] - saved[1] >= len(m.directions) * per_direction, (
        f"activations kept for backward: {saved[1]} B with recompute, {saved[0]} B without"
    )
    torch.testing.assert_close(o1, o0, rtol=0, atol=0)
    torch.testing.assert_close(gx1, gx0, rtol=1e-12, atol=1e-12)
    for a, b in zip(gp1, gp0):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_bimamba_rejects_bad_arguments():
    with pytest.raises(ValueError, match="directions"):
        BiMamba(8, directions=("forward", "sideways"))
    with pytest.raises(ValueError, match="expand"):
        BiMamba(3, expand=1.0)


def test_bimamba_recompute_skips_the_discarded_scan(monkeypatch):
    """The backward's recompute ends in the scan and discards its output: the recurrence runs once per direction."""
    import pc3d.kernels.scan.fused as fused

    for d_state in (1, 2):  # n = 1 forms delta inside the kernel; n = 2 takes it from a matmul
        calls = []
        for kernel in ("_scan_fwd", "_scan_proj_fwd"):
            real = getattr(fused, kernel)
            monkeypatch.setattr(fused, kernel, lambda *a, real=real, calls=calls: calls.append(1) or real(*a))
        torch.manual_seed(3)
        m = BiMamba(8, d_state=d_state, d_conv=4, expand=3.0, stride=2, backend="fused", recompute=True)
        offsets = _offsets(COUNTS)
        n = int(offsets[-1])
        order = torch.arange(n)
        m(torch.randn(n, 8, requires_grad=True), offsets, order, order).square().sum().backward()
        assert len(calls) == len(m.directions)
        assert all(p.grad is not None for p in m.parameters())
        monkeypatch.undo()
