"""MEEPO mixer pieces against brute-force references: direction maps, edge-aware conv, BiMamba, block shapes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pc3d.kernels.scan import scan_order
from pc3d.models.blocks.bimamba import DIRECTIONS, BiMamba, direction_permutation, segment_depthwise_conv

COUNTS = [7, 1, 0, 12, 5]


def _offsets(counts):
    return torch.tensor([0] + torch.tensor(counts).cumsum(0).tolist())


@pytest.mark.parametrize("stride", [2, 3, 5])
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_direction_permutation_matches_per_cloud_scan_order(direction, stride):
    offsets = _offsets(COUNTS)
    pi = direction_permutation(offsets, direction, stride)
    expected = []
    for a, n in zip(offsets[:-1].tolist(), COUNTS):
        s = stride if direction.startswith("strided") else 1
        expected.append(a + scan_order(n, s, reverse=direction.endswith("reverse")))
    assert torch.equal(pi, torch.cat(expected))


def test_direction_permutation_strided_example():
    # meepo.md §5: 1-based "1,3,5,2,4,6" for L=6, s=2
    pi = direction_permutation(torch.tensor([0, 6]), "strided", 2)
    assert (pi + 1).tolist() == [1, 3, 5, 2, 4, 6]
    assert direction_permutation(torch.tensor([0, 6]), "strided-reverse", 2).tolist() == [5, 3, 1, 4, 2, 0]


@pytest.mark.parametrize("k", [1, 3, 4])
def test_segment_conv_zero_pads_at_cloud_edges(k):
    torch.manual_seed(0)
    offsets = _offsets(COUNTS)
    x = torch.randn(2, int(offsets[-1]), 6)
    w = torch.randn(2, 6, k)
    out = segment_depthwise_conv(x, w, offsets)
    for d in range(2):
        for a, n in zip(offsets[:-1].tolist(), COUNTS):
            if n == 0:
                continue
            seg = x[d, a : a + n].T[None]  # (1, C, n)
            ref = F.conv1d(seg, w[d][:, None, :], padding="same", groups=6)[0].T
            torch.testing.assert_close(out[d, :, a : a + n].T, ref, rtol=1e-5, atol=1e-5)


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
    out = m(x, offsets, m.scan_index(order, offsets))
    ref = _bimamba_reference(m, x, offsets, order)
    torch.testing.assert_close(out, ref, rtol=1e-6, atol=1e-7)
    with torch.no_grad():  # inference path: one direction at a time
        torch.testing.assert_close(m(x, offsets, m.scan_index(order, offsets)), ref, rtol=1e-6, atol=1e-7)
    out.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())


def test_bimamba_rejects_bad_arguments():
    with pytest.raises(ValueError, match="directions"):
        BiMamba(8, directions=("forward", "sideways"))
    with pytest.raises(ValueError, match="expand"):
        BiMamba(3, expand=1.0)
    with pytest.raises(ValueError, match="direction"):
        direction_permutation(torch.tensor([0, 3]), "up")
