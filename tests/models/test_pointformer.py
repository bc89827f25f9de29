"""Pointformer backbone components: shapes, permutation behaviour, per-cloud isolation, switches."""

from __future__ import annotations

import pytest
import torch

from pc3d.data.batch import offsets_from_counts
from pc3d.models.pointformer import Pointformer
from pc3d.models.pointformer_layers import (
    GlobalTransformer,
    LocalGlobalTransformer,
    LocalTransformer,
    MultiHeadAttention,
    PointformerBlock,
)


def tiny_backbone(**kw) -> Pointformer:
    args = dict(
        in_channels=1,
        stem_channels=16,
        num_points=(64, 32, 16, 8),
        radii=(0.4, 0.6, 0.9, 1.4),
        num_samples=(8, 8, 8, 8),
        dims=(16, 32, 32, 32),
        out_channels=(32, 32, 32, 32),
        num_heads=2,
        num_local_layers=1,
        num_global_layers=1,
        global_dropout=0.0,
        fp_channels=((32, 32), (32, 32)),
    )
    args.update(kw)
    return Pointformer(**args)


def clouds(counts=(150, 120), seed=0):
    g = torch.Generator().manual_seed(seed)
    coord = torch.rand(sum(counts), 3, generator=g) * torch.tensor([3.0, 3.0, 1.5])
    feat = coord[:, 2:3].clone()
    return coord, feat, offsets_from_counts(counts)


def test_attention_shapes_and_linformer():
    torch.manual_seed(0)
    att = MultiHeadAttention(16, 4).eval()
    q, k = torch.randn(3, 5, 16), torch.randn(3, 7, 16)
    out, w = att(q, k, need_weights=True)
    assert out.shape == (3, 5, 16) and w.shape == (3, 5, 7)
    torch.testing.assert_close(w.sum(-1), torch.ones(3, 5))
    out2, _ = att(q, k)  # fused path equals the explicit one
    torch.testing.assert_close(out, out2, atol=1e-5, rtol=1e-5)
    lin = MultiHeadAttention(16, 4, kv_len=8, kv_ratio=4).eval()
    out, w = lin(q, k, need_weights=True)
    assert out.shape == (3, 5, 16) and w.shape == (3, 5, 2)
    with pytest.raises(ValueError, match="kv_len"):
        lin(q, torch.randn(3, 9, 16))
    with pytest.raises(ValueError, match="num_heads"):
        MultiHeadAttention(10, 4)


def test_local_transformer_permutation_invariant_and_weights():
    torch.manual_seed(0)
    lt = LocalTransformer(8, 16, 24, num_heads=4, num_layers=2).eval()
    feat, rel = torch.randn(5, 6, 8), torch.randn(5, 6, 3)
    out, w = lt(feat, rel, return_weights=True)
    assert out.shape == (5, 24) and w.shape == (5, 6)
    torch.testing.assert_close(w.sum(1), torch.ones(5))
    perm = torch.randperm(6)
    out_p, w_p = lt(feat[:, perm], rel[:, perm], return_weights=True)
    torch.testing.assert_close(out_p, out, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(w_p, w[:, perm], atol=1e-6, rtol=1e-5)
    # the member positions matter (position encoding)
    out_moved, _ = lt(feat, rel + torch.randn_like(rel))
    assert not torch.allclose(out_moved, out, atol=1e-4)


def test_global_transformer_clouds_isolated():
    torch.manual_seed(0)
    gt = GlobalTransformer(16, 8, num_heads=2, num_layers=2).eval()
    xyz, feat = torch.randn(10, 3), torch.randn(10, 16)
    off = torch.tensor([0, 4, 10])
    out = gt(xyz, feat, off)
    assert out.shape == (10, 8)
    feat2 = feat.clone()
    feat2[4:] += 1.0
    out2 = gt(xyz, feat2, off)
    torch.testing.assert_close(out2[:4], out[:4])
    assert not torch.allclose(out2[4:], out[4:])
    # a cloud's output is permutation-equivariant in its points
    perm = torch.randperm(4)
    out3 = gt(torch.cat([xyz[:4][perm], xyz[4:]]), torch.cat([feat[:4][perm], feat[4:]]), off)
    torch.testing.assert_close(out3[:4], out[:4][perm], atol=1e-5, rtol=1e-5)


def test_local_global_transformer_memory_per_cloud():
    torch.manual_seed(0)
    lgt = LocalGlobalTransformer(8, 16, num_heads=2).eval()
    xyz, feat, off = torch.randn(6, 3), torch.randn(6, 16), torch.tensor([0, 3, 6])
    mxyz, mfeat, moff = torch.randn(20, 3), torch.randn(20, 8), torch.tensor([0, 12, 20])
    out = lgt(xyz, feat, off, mxyz, mfeat, moff)
    assert out.shape == (6, 16)
    mfeat2 = mfeat.clone()
    mfeat2[12:] += 1.0
    out2 = lgt(xyz, feat, off, mxyz, mfeat2, moff)
    torch.testing.assert_close(out2[:3], out[:3])
    assert not torch.allclose(out2[3:], out[3:])


def test_block_shapes_and_indices_stay_in_cloud():
    torch.manual_seed(0)
    coord, feat, off = clouds()
    blk = PointformerBlock(1, 20, 0.5, 8, 16, 32, num_heads=2, num_local_layers=1, num_global_layers=1).eval()
    xyz, x, noff, idx = blk(coord, feat, off)
    assert xyz.shape == (40, 3) and x.shape == (40, 32)
    assert noff.tolist() == [0, 20, 40]
    assert bool((idx[:20] < 150).all()) and bool((idx[20:] >= 150).all())
    torch.testing.assert_close(xyz, coord[idx])
    with pytest.raises(ValueError, match="num_points"):
        PointformerBlock(1, 200, 0.5, 8, 16, 32)(coord, feat, off)


def test_backbone_outputs():
    torch.manual_seed(0)
    coord, feat, off = clouds()
    m = tiny_backbone().eval()
    out = m(coord, feat, off)
    assert out["seed_xyz"].shape == (64, 3) and out["seed_feat"].shape == (64, 32)
    assert out["seed_offsets"].tolist() == [0, 32, 64]
    si = out["seed_indices"]
    assert bool((si[:32] < 150).all()) and bool((si[32:] >= 150).all())
    torch.testing.assert_close(out["seed_xyz"], coord[si])  # no refinement: seeds are input points
    assert [len(x) for x in out["sa_xyz"]] == [270, 128, 64, 32, 16]
    with pytest.raises(ValueError, match="feat"):
        m(coord, torch.zeros(len(coord), 2), off)
    with pytest.raises(ValueError, match="offsets"):
        m(coord, feat, torch.tensor([0, 10]))
    with pytest.raises(ValueError, match="radii"):
        tiny_backbone(radii=(0.1, 0.2))


def test_batch_invariance_eval():
    torch.manual_seed(0)
    coord, feat, off = clouds()
    m = tiny_backbone(use_local_global=True, refine=True).eval()
    both = m(coord, feat, off)
    alone = m(coord[:150], feat[:150], torch.tensor([0, 150]))
    torch.testing.assert_close(both["seed_feat"][:32], alone["seed_feat"], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(both["seed_xyz"][:32], alone["seed_xyz"], atol=1e-6, rtol=1e-5)
    second = m(coord[150:], feat[150:], torch.tensor([0, 120]))
    torch.testing.assert_close(both["seed_feat"][32:], second["seed_feat"], atol=1e-5, rtol=1e-4)


def test_local_global_changes_output_and_trains():
    torch.manual_seed(0)
    coord, feat, off = clouds()
    m = tiny_backbone(use_local_global=True).eval()
    with_lgt = m(coord, feat, off)["seed_feat"]
    saved = [b.local_global for b in m.blocks]
    for b in m.blocks:
        b.local_global = None
    without = m(coord, feat, off)["seed_feat"]
    for b, s in zip(m.blocks, saved):
        b.local_global = s
    assert (with_lgt - without).abs().max() > 1e-3
    m.train()
    m(coord, feat, off)["seed_feat"].square().mean().backward()
    g = m.blocks[0].local_global.layer.cross_attn.q_proj.weight.grad
    assert g is not None and g.abs().sum() > 0


def test_coordinate_refinement_moves_seeds_and_changes_features():
    torch.manual_seed(0)
    coord, feat, off = clouds()
    m = tiny_backbone(refine=True).eval()
    out = m(coord, feat, off)
    shift = (out["seed_xyz"] - coord[out["seed_indices"]]).norm(dim=1)
    assert shift.max() > 1e-3
    for b in m.blocks:
        b.refine = False
    plain = m(coord, feat, off)
    torch.testing.assert_close(plain["seed_xyz"], coord[plain["seed_indices"]])
    assert (out["seed_feat"] - plain["seed_feat"]).abs().max() > 1e-3
    # refined centroids are convex combinations of their ball: they stay within the ball's radius
    for b in m.blocks:
        b.refine = True
    blk = m.blocks[0]
    xyz, _, _, idx = blk(coord, m.stem(feat), off)
    assert bool(((xyz - coord[idx]).norm(dim=1) <= blk.radius + 1e-5).all())
    # refinement is differentiable: gradients reach the LT attention through the refined xyz
    m.train()
    m.zero_grad()
    m(coord, feat, off)["seed_xyz"].sum().backward()
    g = m.blocks[0].local.layers[-1].attn.q_proj.weight.grad
    assert g is not None and g.abs().sum() > 0


def test_linformer_backbone_and_switches():
    torch.manual_seed(0)
    coord, feat, off = clouds()
    m = tiny_backbone(linformer_ratio=2, use_local_global=True, cloud_points=150).eval()
    out = m(coord, feat, off)
    assert out["seed_feat"].shape == (64, 32)
    assert m.blocks[0].glob.layers[0].attn.linformer
    no_global = tiny_backbone(use_global=False).eval()
    assert no_global.blocks[0].glob is None
    assert no_global(coord, feat, off)["seed_feat"].shape == (64, 32)


def test_paper_size_defaults():
    m = Pointformer()
    assert [b.num_points for b in m.blocks] == [2048, 1024, 512, 256]
    assert [b.radius for b in m.blocks] == [0.2, 0.4, 0.8, 1.2]
    assert [b.num_samples for b in m.blocks] == [64, 32, 16, 16]
    assert m.out_channels == 256
    assert all(len(b.local.layers) == 2 and len(b.glob.layers) == 2 for b in m.blocks)
    assert m.blocks[0].glob.layers[0].attn.num_heads == 8
