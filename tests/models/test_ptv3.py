"""PTv3 baseline: serialized patches, attention vs brute force, batch/order invariance, paper size."""

from __future__ import annotations

import pytest
import torch
from mixer_checks import (
    check_batch_invariance,
    check_no_cross_cloud_gradient,
    check_order_invariance,
    check_pairs_built_once_per_level,
    warmed_up,
)

from pc3d.models.blocks.ptv3_block import SerializedAttention, patch_index
from pc3d.models.ptv3 import PTv3

SMALL = dict(
    in_channels=6,
    num_classes=5,
    grid_size=0.1,
    strides=(2, 2),
    enc_depths=(1, 2, 1),
    enc_channels=(16, 24, 32),
    enc_num_heads=(2, 2, 4),
    dec_depths=(1, 1),
    dec_channels=(16, 24),
    dec_num_heads=(2, 2),
    drop_path=0.0,
    patch_size=48,
)


def _model(**kw) -> PTv3:
    torch.manual_seed(0)
    return warmed_up(PTv3(**{**SMALL, **kw}))


def test_patch_index_covers_every_row_once_within_its_cloud():
    counts = [10, 0, 3, 8, 17]
    offsets = torch.tensor([0] + torch.tensor(counts).cumsum(0).tolist())
    n = int(offsets[-1])
    order = torch.cat([a + torch.randperm(c) for a, c in zip(offsets[:-1].tolist(), counts)])
    index, valid, owned = patch_index(order, offsets, 4)
    assert index.shape[1] == 4
    assert torch.equal(torch.sort(index[owned]).values, torch.arange(n))  # owned exactly once
    cloud = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    pc = cloud[index]
    assert (pc == pc[:, :1]).all()  # a patch never crosses clouds
    assert valid.sum(1).tolist() == [4, 4, 4, 3, 4, 4, 4, 4, 4, 4, 4]
    # no key appears twice in a patch
    for p in range(index.shape[0]):
        assert index[p][valid[p]].unique().numel() == int(valid[p].sum())
    # patches follow the serialized order: consecutive slots are consecutive serialized positions
    pos = torch.empty(n, dtype=torch.long)
    pos[order] = torch.arange(n)
    steps = pos[index][:, 1:] - pos[index][:, :-1]
    assert (steps[valid[:, 1:]] == 1).all()


@pytest.mark.parametrize("impl", ["sdpa", "math"])
def test_serialized_attention_matches_per_patch_softmax(impl):
    torch.manual_seed(0)
    attn = SerializedAttention(8, 2, attn_impl=impl).eval()
    offsets = torch.tensor([0, 11, 13])
    order = torch.cat([torch.randperm(11), 11 + torch.randperm(2)])
    index, valid, owned = patch_index(order, offsets, 4)
    x = torch.randn(13, 8)
    out = attn(x, index, valid, owned)
    qkv = attn.qkv(x).reshape(13, 3, 2, 4)
    ref = torch.empty(13, 8)
    for p in range(index.shape[0]):
        rows = index[p][valid[p]]
        q, k, v = qkv[rows].unbind(1)  # (K, H, 4)
        w = torch.einsum("ihc,jhc->hij", q, k) * 4**-0.5
        o = torch.einsum("hij,jhc->ihc", w.softmax(-1), v).reshape(-1, 8)
        own = owned[p][valid[p]]
        ref[rows[own]] = o[own]
    torch.testing.assert_close(out, attn.proj(ref), rtol=1e-5, atol=1e-5)


def test_ptv3_batch_invariance():
    check_batch_invariance(_model())


def test_ptv3_information_flows_within_but_never_across_clouds():
    check_no_cross_cloud_gradient(_model(patch_size=1024))


def test_ptv3_order_invariance():
    check_order_invariance(_model())


def test_ptv3_paper_size_parameter_count():
    n = sum(p.numel() for p in PTv3().parameters())
    assert abs(n / 46.2e6 - 1) < 0.05, n


def test_ptv3_rejects_bad_config():
    with pytest.raises(ValueError, match="num_heads"):
        PTv3(**{**SMALL, "enc_num_heads": (3, 2, 4)})
    with pytest.raises(ValueError, match="enc_num_heads"):
        PTv3(**{**SMALL, "enc_num_heads": (2, 2)})


def test_ptv3_builds_neighbour_pairs_once_per_level():
    check_pairs_built_once_per_level(_model())
