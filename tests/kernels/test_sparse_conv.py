"""The CPU-fixed spconv against dense ``torch.nn.functional`` references, at 2 threads, repeated.

One lucky run proves nothing about a race, so every case runs ``REPEATS`` times on fresh
random inputs, in train and eval mode, with and without bias, forward and backward, with the
scatter-add kernel forced parallel and serial.
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from pc3d.kernels.points._common import kernel_mode
from pc3d.kernels.sparse import apply_cpu_fixes, indice_conv_cpu, spconv

REPEATS = 10
SPATIAL = (12, 11, 10)  # large enough that unpatched spconv races in ~1 of 4 calls
BATCH = 2
C_IN, C_MID = 8, 6
TOL = dict(rtol=1e-4, atol=1e-4)


def _random_sparse(gen: torch.Generator, density: float = 0.3):
    """Random unique active sites ``(M, 4)`` (b, z, y, x) int32 with features ``(M, C_IN)``."""
    occ = torch.rand((BATCH, *SPATIAL), generator=gen) < density
    indices = occ.nonzero().int()
    feats = torch.randn(indices.shape[0], C_IN, generator=gen, dtype=torch.float32)
    return indices, feats


def _to_dense(indices: torch.Tensor, feats: torch.Tensor, spatial) -> torch.Tensor:
    """Differentiable scatter of ``feats (M, C)`` into ``(B, C, D, H, W)``."""
    dense = feats.new_zeros((BATCH, *spatial, feats.shape[1]))
    idx = indices.long()
    dense = dense.index_put((idx[:, 0], idx[:, 1], idx[:, 2], idx[:, 3]), feats)
    return dense.permute(0, 4, 1, 2, 3)


def _at(dense: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """Rows of ``dense (B, C, D, H, W)`` at ``indices (M, 4)`` → ``(M, C)``."""
    idx = indices.long()
    return dense.permute(0, 2, 3, 4, 1)[idx[:, 0], idx[:, 1], idx[:, 2], idx[:, 3]]


def _torch_weight(w: torch.Tensor) -> torch.Tensor:
    """spconv KRSC ``(O, kD, kH, kW, I)`` → torch ``(O, I, kD, kH, kW)``."""
    return w.permute(0, 4, 1, 2, 3)


def _check_grads(sparse_out, dense_out_rows, feats_s, feats_d, weights_s, weights_d, gen):
    grad = torch.randn(sparse_out.shape, generator=gen)
    (sparse_out * grad).sum().backward()
    (dense_out_rows * grad).sum().backward()
    torch.testing.assert_close(feats_s.grad, feats_d.grad, **TOL)
    for ws, wd in zip(weights_s, weights_d):
        torch.testing.assert_close(ws.grad, wd.grad, **TOL)


CASES = list(itertools.product(["train", "eval"], [False, True]))


@pytest.fixture(autouse=True, params=["parallel", "serial"])
def numba_mode(request):
    """Every case with the scatter-add on all threads (where a race would show) and on one."""
    with kernel_mode(request.param):
        yield request.param


@pytest.mark.parametrize(("mode", "bias"), CASES)
def test_subm_conv_matches_dense(mode: str, bias: bool):
    assert torch.get_num_threads() == 2
    gen = torch.Generator().manual_seed(0)
    for _ in range(REPEATS):
        conv = spconv.SubMConv3d(C_IN, C_MID, 3, bias=bias, indice_key="s")
        with torch.no_grad():
            conv.weight.normal_(generator=gen)
            if bias:
                conv.bias.normal_(generator=gen)
        conv.train(mode == "train")
        indices, feats = _random_sparse(gen)
        feats_s = feats.clone().requires_grad_()
        out = conv(spconv.SparseConvTensor(feats_s, indices, SPATIAL, BATCH))
        assert torch.equal(out.indices, indices)

        feats_d = feats.clone().requires_grad_()
        w_d = conv.weight.detach().clone().requires_grad_()
        b_d = conv.bias.detach().clone() if bias else None
        ref = _at(F.conv3d(_to_dense(indices, feats_d, SPATIAL), _torch_weight(w_d), b_d, padding=1), indices)
        torch.testing.assert_close(out.features, ref, **TOL)
        _check_grads(out.features, ref, feats_s, feats_d, [conv.weight], [w_d], gen)


@pytest.mark.parametrize(("mode", "bias"), CASES)
def test_strided_and_inverse_conv_match_dense(mode: str, bias: bool):
    """SparseConv3d (stride 2) then SparseInverseConv3d back to the input sites."""
    gen = torch.Generator().manual_seed(1)
    for _ in range(REPEATS):
        down = spconv.SparseConv3d(C_IN, C_MID, 3, stride=2, padding=1, bias=bias, indice_key="d")
        up = spconv.SparseInverseConv3d(C_MID, C_IN, 3, bias=bias, indice_key="d")
        with torch.no_grad():
            for p in (*down.parameters(), *up.parameters()):
                p.normal_(generator=gen)
        down.train(mode == "train")
        up.train(mode == "train")
        indices, feats = _random_sparse(gen)
        feats_s = feats.clone().requires_grad_()
        mid = down(spconv.SparseConvTensor(feats_s, indices, SPATIAL, BATCH))
        out = up(mid)
        assert torch.equal(out.indices, indices)

        feats_d = feats.clone().requires_grad_()
        wd_down = down.weight.detach().clone().requires_grad_()
        wd_up = up.weight.detach().clone().requires_grad_()
        b_down = down.bias.detach() if bias else None
        b_up = up.bias.detach() if bias else None
        dense_mid = F.conv3d(
            _to_dense(indices, feats_d, SPATIAL), _torch_weight(wd_down), b_down, stride=2, padding=1
        )
        # The strided conv's active outputs are exactly the sites with an input in their field.
        occupancy = F.conv3d(
            _to_dense(indices, torch.ones(len(indices), 1), SPATIAL),
            torch.ones(1, 1, 3, 3, 3),
            stride=2,
            padding=1,
        )
        expected_sites = (occupancy[:, 0] > 0).nonzero().int()
        assert sorted(map(tuple, mid.indices.tolist())) == sorted(map(tuple, expected_sites.tolist()))
        mid_rows = _at(dense_mid, mid.indices)
        torch.testing.assert_close(mid.features, mid_rows, **TOL)

        # Inverse conv = transposed conv of the (sparse) strided output, read at the input sites.
        dense_mid_sparse = _to_dense(mid.indices, mid_rows, dense_mid.shape[2:])
        out_pad = [s - ((m - 1) * 2 - 2 + 3) for s, m in zip(SPATIAL, dense_mid.shape[2:])]
        dense_up = F.conv_transpose3d(
            dense_mid_sparse, wd_up.permute(4, 0, 1, 2, 3), b_up, stride=2, padding=1, output_padding=out_pad
        )
        ref = _at(dense_up, indices)
        torch.testing.assert_close(out.features, ref, **TOL)
        _check_grads(out.features, ref, feats_s, feats_d, [down.weight, up.weight], [wd_down, wd_up], gen)


def test_patch_is_idempotent():
    from spconv.pytorch import ops

    conv, backward = ops.indice_conv, ops.indice_conv_backward
    apply_cpu_fixes()
    assert ops.indice_conv is conv and ops.indice_conv_backward is backward


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_subm_conv_other_dtypes(dtype: torch.dtype):
    """float64 takes the numba scatter-add, bfloat16 the ``index_add_`` fallback; both match float32."""
    gen = torch.Generator().manual_seed(2)
    conv = spconv.SubMConv3d(C_IN, C_MID, 3, bias=True, indice_key="t").eval()
    with torch.no_grad():
        conv.weight.normal_(generator=gen)
        conv.bias.normal_(generator=gen)
    indices, feats = _random_sparse(gen)
    ref = conv(spconv.SparseConvTensor(feats, indices, SPATIAL, BATCH)).features
    out = conv.to(dtype)(spconv.SparseConvTensor(feats.to(dtype), indices, SPATIAL, BATCH)).features
    assert out.dtype == dtype
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == torch.float64 else dict(rtol=0.05, atol=0.3)
    torch.testing.assert_close(out.float(), ref, **tol)


def test_conv_forward_is_outside_autograd():
    """The forward op builds no graph (spconv's Function supplies the backward)."""
    feats = torch.randn(4, 2, requires_grad=True)
    filters = torch.randn(3, 1, 1, 1, 2)
    pairs = torch.tensor([[[0, 1]], [[1, 0]]], dtype=torch.int32)
    out = indice_conv_cpu(feats, filters, pairs, torch.tensor([2], dtype=torch.int32), 4)
    assert not out.requires_grad
    expected = torch.zeros(4, 3)
    expected[1] = feats[0].detach() @ filters.reshape(3, 2).T
    expected[0] = feats[1].detach() @ filters.reshape(3, 2).T
    torch.testing.assert_close(out, expected)


def _pair_sets(pairs: torch.Tensor, counts: list[int]) -> list[set]:
    return [set(zip(pairs[0, k, :n].tolist(), pairs[1, k, :n].tolist())) for k, n in enumerate(counts)]


@pytest.mark.parametrize(
    ("spatial", "ksize", "dilation"),
    [((12, 11, 10), [3, 3, 3], [1, 1, 1]), ((12, 11, 10), [5, 5, 5], [1, 1, 1]),
     ((12, 11, 10), [3, 1, 5], [2, 1, 1]), ((30, 20), [3, 3], [1, 1])],
)  # fmt: skip
def test_subm_pairs_match_spconv(spatial, ksize, dilation):
    """The merge-based builder finds exactly spconv's own pairs for every kernel offset."""
    from spconv.pytorch import ops

    from pc3d.kernels.sparse import _pair_counts, subm_indice_pairs_cpu

    gen = torch.Generator().manual_seed(3)
    occ = torch.rand((BATCH, *spatial), generator=gen) < 0.3
    indices = occ.nonzero().int()
    indices = indices[torch.randperm(len(indices), generator=gen)].contiguous()  # rows in no spatial order
    ndim = len(spatial)
    out, pairs, counts = subm_indice_pairs_cpu(indices, BATCH, list(spatial), ksize, dilation)
    assert out is indices
    ref_out, ref_pairs, ref_num = ops.get_indice_pairs.__wrapped__(
        indices, BATCH, list(spatial), ops.ConvAlgo.Native, ksize, [1] * ndim,
        [k // 2 * d for k, d in zip(ksize, dilation)], dilation, [0] * ndim, True, False,
    )  # fmt: skip
    kv = len(counts)
    ref_counts = _pair_counts(ref_num, kv, True)
    assert counts[kv // 2] == 0 and ref_counts[kv // 2] == 0  # the centre pairs every row with itself
    assert counts.tolist() == ref_counts
    assert _pair_sets(pairs, counts.tolist()) == _pair_sets(ref_pairs, ref_counts)
    assert pairs.shape == (2, kv, max(ref_counts)) and max(ref_counts) < len(
        indices
    )  # no room for the centre


def test_subm_pairs_reject_bad_indices():
    from pc3d.kernels.sparse import subm_indice_pairs_cpu

    good = torch.tensor([[0, 1, 1, 1], [0, 1, 2, 1]], dtype=torch.int32)
    with pytest.raises(ValueError, match=r"voxel \[0, 1, 1, 1\] appears more than once"):
        subm_indice_pairs_cpu(torch.cat([good, good[:1]]), 1, [4, 4, 4], [3] * 3, [1] * 3)
    with pytest.raises(ValueError, match=r"column 2 must lie in \[0, 2\), got \[1, 2\]"):
        subm_indice_pairs_cpu(good, 1, [4, 2, 4], [3] * 3, [1] * 3)
    with pytest.raises(ValueError, match=r"batch column must lie in \[0, 1\)"):
        subm_indice_pairs_cpu(
            good + torch.tensor([1, 0, 0, 0], dtype=torch.int32), 1, [4, 4, 4], [3] * 3, [1] * 3
        )
    _, pairs, counts = subm_indice_pairs_cpu(good[:0], 1, [4, 4, 4], [3] * 3, [1] * 3)
    assert pairs.shape == (2, 27, 0) and counts.sum() == 0
