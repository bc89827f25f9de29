"""SetAbstraction's factored first layer and chunked inference give the plain PointNet++ result."""

from __future__ import annotations

import pytest
import torch

from pc3d.models.pointformer_layers import set_abstraction as sa_mod
from pc3d.models.pointformer_layers.grouping import group, sample
from pc3d.models.pointformer_layers.set_abstraction import SetAbstraction


def reference(sa: SetAbstraction, xyz, feat, offsets):
    """The textbook formulation: gather ``[x_j - c_i (/ r), f_j]`` for every grouped row, then the MLP."""
    idx, new_off = sample(xyz, offsets, sa.num_points)
    centers = xyz[idx]
    nbr = group(xyz, offsets, centers, new_off, sa.radius, sa.num_samples)
    rel = xyz[nbr] - centers.unsqueeze(1)
    if sa.normalize_xyz:
        rel = rel / sa.radius
    g = torch.cat([rel, feat[nbr]], -1)
    s, k, c = g.shape
    return centers, sa.mlp(g.reshape(s * k, c)).reshape(s, k, -1).max(1).values, new_off


def _inputs(seed: int, far: float):
    g = torch.Generator().manual_seed(seed)
    counts = [300, 180, 257]
    xyz = torch.rand(sum(counts), 3, generator=g) * 4 + far  # sets far from the origin: cancellation
    feat = torch.randn(sum(counts), 8, generator=g)
    offsets = torch.tensor([0, *torch.tensor(counts).cumsum(0).tolist()])
    return xyz, feat, offsets


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("far", [0.0, 40.0])
def test_eval_forward_matches_reference_across_chunks(monkeypatch, normalize, far):
    torch.manual_seed(0)
    sa = SetAbstraction(8, [16, 32], num_points=40, radius=0.8, num_samples=16, normalize_xyz=normalize)
    for m in sa.modules():  # non-trivial batch-norm statistics
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    sa.eval()
    xyz, feat, offsets = _inputs(1, far)
    monkeypatch.setattr(sa_mod, "INFERENCE_CHUNK_ROWS", 16 * 7)  # 7 centres per chunk: a ragged last chunk
    with torch.no_grad():
        c0, h0, o0 = reference(sa, xyz, feat, offsets)
        c1, h1, o1 = sa(xyz, feat, offsets)
    assert torch.equal(c0, c1) and torch.equal(o0, o1)
    assert h1.shape == (120, 32)
    torch.testing.assert_close(h1, h0, rtol=1e-4, atol=1e-4)


def test_training_forward_and_gradients_match_reference():
    torch.manual_seed(0)
    sa = SetAbstraction(8, [16, 32], num_points=40, radius=0.8, num_samples=16).train()
    xyz, feat, offsets = _inputs(2, 10.0)
    feat0, feat1 = feat.clone().requires_grad_(), feat.clone().requires_grad_()
    _, h0, _ = reference(sa, xyz, feat0, offsets)
    grads0 = torch.autograd.grad(h0.square().sum(), [feat0, *sa.parameters()])
    _, h1, _ = sa(xyz, feat1, offsets)
    grads1 = torch.autograd.grad(h1.square().sum(), [feat1, *sa.parameters()])
    torch.testing.assert_close(h1, h0, rtol=1e-4, atol=1e-4)
    for a, b in zip(grads1, grads0):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3)


def test_duplicated_points_are_computed_once_with_the_same_result(monkeypatch):
    """Sets made of cyclic copies of a few points (RoI pooling of sparse boxes) give the reference output,
    and the MLP sees one group per distinct centre."""
    torch.manual_seed(0)
    sa = SetAbstraction(8, [16, 32], num_points=24, radius=0.5, num_samples=8).eval()
    g = torch.Generator().manual_seed(3)
    unique = [3, 40, 1]
    xyz, feat = [], []
    for u in unique:  # 64 pooled points per set, repeating u distinct ones
        base_xyz, base_feat = torch.rand(u, 3, generator=g), torch.randn(u, 8, generator=g)
        pick = torch.arange(64) % u
        xyz.append(base_xyz[pick])
        feat.append(base_feat[pick])
    xyz, feat = torch.cat(xyz), torch.cat(feat)
    offsets = torch.tensor([0, 64, 128, 192])
    rows = []
    rest_forward = sa.mlp[1].forward
    monkeypatch.setattr(sa.mlp[1], "forward", lambda x: rows.append(len(x)) or rest_forward(x))
    with torch.no_grad():
        _, h1, _ = sa(xyz, feat, offsets)
        n_rows = sum(rows)
        _, h0, _ = reference(sa, xyz, feat, offsets)
    torch.testing.assert_close(h1, h0, rtol=1e-4, atol=1e-4)
    assert n_rows < 24 * 8 * 3 // 2  # sets 1 and 3 hold 3 and 1 distinct points: most groups repeat
