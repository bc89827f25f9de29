"""spconv, made to train exactly on CPU. Import spconv from here, never directly::

    from pc3d.kernels.sparse import spconv
    conv = spconv.SubMConv3d(16, 32, 3, indice_key="subm1")

spconv 2.3.x has three defects on CPU and one trap everywhere, all in ``spconv.pytorch.ops``
(see docs/architecture.md):

1. ``indice_conv_backward`` calls ``get_current_stream()`` (a CUDA query) before its CPU branch,
   so every backward pass raises "Torch not compiled with CUDA enabled".
2. In eval mode, convs fuse their bias into ``indice_conv`` (``bias_for_infer``), whose CPU path
   asserts "cpu don't support act and bias".
3. Its CPU gather/scatter-add kernel runs an OpenMP loop that races when torch uses more than
   one thread: a few output rows are wrong in roughly a third of calls.
4. Its indice-pair builders read ``indices`` by raw pointer as if row-major: a non-contiguous
   ``(M, 4)`` tensor (``torch.nonzero`` returns one) silently yields wrong neighbour pairs.

All four are fixed in one place: on CPU tensors, ``ops.indice_conv`` and
``ops.indice_conv_backward`` are replaced by a gather-GEMM-scatter on spconv's own indice pairs
(``index_select``, a BLAS GEMM on every thread, and a parallel numba scatter-add that is
race-free because one kernel offset never maps two pairs to the same row), with the bias
added in the same function. Submanifold pairs with odd kernels are built here
(:func:`subm_indice_pairs_cpu`: the sorted voxel keys merged with themselves shifted by each
offset, 3-4.7x faster than spconv's single-threaded hash table on large grids, and refusing duplicate or
out-of-range voxels); other pair builders get contiguous indices. CUDA tensors go to spconv's
original functions untouched. ``ops.get_current_stream`` returns 0 when CUDA is unavailable, for
the remaining CPU paths (pooling backward). The patch is applied once, at import, idempotently.
"""

from __future__ import annotations

import spconv.pytorch as spconv
import torch
from spconv.pytorch import ops
from torch import Tensor

from pc3d.kernels._sparse_numba import first_repeat, scatter_add_rows, subm_pairs
from pc3d.kernels.points._common import numba_threads

__all__ = [
    "spconv",
    "apply_cpu_fixes",
    "indice_conv_cpu",
    "indice_conv_backward_cpu",
    "subm_indice_pairs_cpu",
]

_PATCH_MARK = "_pc3d_cpu_fixes"


def _filters_kv(filters: Tensor) -> Tensor:
    """spconv's filter layout as ``(O, KV, I)``.

    spconv 2.3 stores every weight as KRSC ``(O, kD, kH, kW, I)`` when ``ALL_WEIGHT_IS_KRSC``.
    """
    if not ops.ALL_WEIGHT_IS_KRSC:
        raise RuntimeError("pc3d.kernels.sparse supports spconv builds with KRSC weights (spconv >= 2.2)")
    return filters.reshape(filters.shape[0], -1, filters.shape[-1])


def _pair_counts(indice_pair_num: Tensor, kv: int, subm: bool) -> list[int]:
    """Pairs per kernel offset. Submanifold tables store only the first half; the rest mirrors it."""
    counts = indice_pair_num.tolist()
    if subm:
        counts = [counts[kv - i - 1] if i > kv // 2 else counts[i] for i in range(kv)]
    return counts


def _offsets(indice_pairs: Tensor, indice_pair_num: Tensor, kv: int, inverse: bool, subm: bool):
    """``(k, rows_in (n,), rows_out (n,))`` for every kernel offset with pairs (the centre of a
    submanifold conv excluded: it pairs every row with itself)."""
    pair_in, pair_out = indice_pairs[int(inverse)], indice_pairs[int(not inverse)]
    for k, n in enumerate(_pair_counts(indice_pair_num, kv, subm)):
        if n > 0 and not (subm and k == kv // 2):
            yield k, pair_in[k, :n], pair_out[k, :n]


def _scatter_add(out: Tensor, rows: Tensor, src: Tensor) -> None:
    """``out[rows] += src`` for rows that do not repeat: a parallel numba pass for float32/float64
    (``index_add_`` runs on one thread), ``index_add_`` for other dtypes."""
    if out.dtype in (torch.float32, torch.float64):
        with numba_threads(src.numel()):
            scatter_add_rows(out.numpy(), rows.numpy(), src.numpy())
    else:
        out.index_add_(0, rows.long(), src)


@torch.no_grad()
def indice_conv_cpu(
    features: Tensor,
    filters: Tensor,
    indice_pairs: Tensor,
    indice_pair_num: Tensor,
    num_activate_out: int,
    inverse: bool = False,
    subm: bool = False,
    bias: Tensor | None = None,
) -> Tensor:
    """Sparse conv forward on CPU: ``out[o] += features[i] @ W_k^T`` for every pair ``(i, o)`` of offset k.

    Per offset: gather the input rows (``index_select``), one GEMM, and a parallel scatter-add
    of the products; the buffers are reused across offsets. No autograd: spconv's conv Function
    calls :func:`indice_conv_backward_cpu` for the gradients.

    Args:
        features: ``(N_in, I)`` input features.
        filters: ``(O, kD, kH, kW, I)`` weights.
        indice_pairs: ``(2, KV, P)`` input/output rows per kernel offset (swapped for inverse convs).
        indice_pair_num: ``(KV,)`` valid pairs per offset.
        num_activate_out: ``N_out``.
        bias: ``(O,)`` or ``None``.

    Returns:
        ``(N_out, O)`` output features.
    """
    w = _filters_kv(filters)
    kv = w.shape[1]
    features = features.contiguous()
    if subm:
        out = features @ w[:, kv // 2].T
    else:
        out = features.new_zeros((num_activate_out, w.shape[0]))
    pairs = list(_offsets(indice_pairs, indice_pair_num, kv, inverse, subm))
    most = max((rows.shape[0] for _, rows, _ in pairs), default=0)
    gathered = features.new_empty((most, features.shape[1]))
    product = features.new_empty((most, w.shape[0]))
    for k, rows_in, rows_out in pairs:
        n = rows_in.shape[0]
        torch.index_select(features, 0, rows_in, out=gathered[:n])
        torch.mm(gathered[:n], w[:, k].T, out=product[:n])
        _scatter_add(out, rows_out, product[:n])
    if bias is not None:
        out += bias
    return out


@torch.no_grad()
def indice_conv_backward_cpu(
    features: Tensor,
    filters: Tensor,
    out_bp: Tensor,
    indice_pairs: Tensor,
    indice_pair_num: Tensor,
    inverse: bool = False,
    subm: bool = False,
) -> tuple[Tensor, Tensor]:
    """Gradients of :func:`indice_conv_cpu` w.r.t. ``features (N_in, I)`` and ``filters (O, kD, kH, kW, I)``."""
    w = _filters_kv(filters)
    kv = w.shape[1]
    features = features.contiguous()
    out_bp = out_bp.contiguous()
    d_w = features.new_zeros((kv, w.shape[0], w.shape[2]))  # (KV, O, I)
    if subm:
        d_features = out_bp @ w[:, kv // 2]
        torch.mm(out_bp.T, features, out=d_w[kv // 2])
    else:
        d_features = torch.zeros_like(features)
    pairs = list(_offsets(indice_pairs, indice_pair_num, kv, inverse, subm))
    most = max((rows.shape[0] for _, rows, _ in pairs), default=0)
    grad_rows = out_bp.new_empty((most, out_bp.shape[1]))
    feat_rows = features.new_empty((most, features.shape[1]))
    product = features.new_empty((most, features.shape[1]))
    for k, rows_in, rows_out in pairs:
        n = rows_in.shape[0]
        torch.index_select(out_bp, 0, rows_out, out=grad_rows[:n])
        torch.index_select(features, 0, rows_in, out=feat_rows[:n])
        torch.mm(grad_rows[:n], w[:, k], out=product[:n])
        _scatter_add(d_features, rows_in, product[:n])
        torch.mm(grad_rows[:n].T, feat_rows[:n], out=d_w[k])
    return d_features, d_w.transpose(0, 1).reshape(filters.shape)


def subm_indice_pairs_cpu(
    indices: Tensor, batch_size: int, spatial_shape: list[int], ksize: list[int], dilation: list[int]
) -> tuple[Tensor, Tensor, Tensor]:
    """Submanifold conv pairs on CPU, in spconv's layout: ``(out_indices, pairs (2, KV, P), counts (KV,))``.

    ``indices (M, 1 + D)`` int32 rows ``(batch, i_1 .. i_D)``; ``pairs[0, k, :counts[k]]`` are input rows and
    ``pairs[1, k, :counts[k]]`` output rows of kernel offset ``k`` (row-major over ``ksize``), the input
    sitting at ``output + (offset - ksize // 2) * dilation``. As in spconv, the centre offset (every row
    with itself) has count 0. The table is only as wide as the most pairs of an offset (``P``), not ``M``:
    a level's tables live as long as its sparse tensor, and a 5x5x5 kernel's full ``(2, 125, M)`` table
    would hold 1 kB per voxel. The voxel keys are sorted once and merged with themselves shifted by each
    offset (linear per offset); spconv's CPU builder probes a hash table.
    """
    m, ndim = indices.shape[0], indices.shape[1] - 1
    pad = [(k // 2) * d for k, d in zip(ksize, dilation)]
    dims = [s + 2 * p for s, p in zip(spatial_shape, pad)]
    idx = indices.long()
    if m and (int(idx[:, 0].min()) < 0 or int(idx[:, 0].max()) >= batch_size):
        raise ValueError(f"indices: batch column must lie in [0, {batch_size}), got [{int(idx[:, 0].min())}, "
                         f"{int(idx[:, 0].max())}]")  # fmt: skip
    keys = idx[:, 0].clone()
    for d in range(ndim):
        col = idx[:, d + 1]
        if m and (int(col.min()) < 0 or int(col.max()) >= spatial_shape[d]):
            raise ValueError(f"indices: column {d + 1} must lie in [0, {spatial_shape[d]}), got "
                             f"[{int(col.min())}, {int(col.max())}]")  # fmt: skip
        keys = keys * dims[d] + col + pad[d]
    sorted_keys, order = torch.sort(keys)
    repeat = first_repeat(sorted_keys.numpy())
    if repeat >= 0:
        raise ValueError(f"indices: voxel {indices[order[repeat]].tolist()} appears more than once")
    strides = [1] * ndim
    for d in range(ndim - 2, -1, -1):
        strides[d] = strides[d + 1] * dims[d + 1]
    offsets = torch.cartesian_prod(*[torch.arange(k) - k // 2 for k in ksize]).reshape(-1, ndim)
    deltas = (offsets * torch.tensor(dilation) * torch.tensor(strides)).sum(1)
    pairs = torch.full((2, deltas.numel(), m), -1, dtype=indices.dtype)
    counts = torch.zeros(deltas.numel(), dtype=indices.dtype)
    run, step = ksize[-1], dilation[-1] * strides[-1]
    keys_np, rows_np = sorted_keys.numpy(), order.to(indices.dtype).numpy()
    with numba_threads(float(m) * deltas.numel() * 8):  # ~8 ns per row and offset
        subm_pairs(keys_np, rows_np, deltas.numpy(), run, step, pairs.numpy(), counts.numpy())
    centre = deltas.numel() // 2
    counts[centre] = 0
    width = int(counts.max()) if m else 0
    pairs = pairs[:, :, :width].clone()
    pairs[:, centre] = -1
    return indices, pairs, counts


def apply_cpu_fixes() -> None:
    """Patch ``spconv.pytorch.ops`` once (idempotent). CUDA tensors keep spconv's own kernels."""
    if getattr(ops, _PATCH_MARK, False):
        return
    original_conv = ops.indice_conv
    original_pairs = ops.get_indice_pairs
    original_pairs_igemm = ops.get_indice_pairs_implicit_gemm
    original_backward = ops.indice_conv_backward

    def indice_conv(
        features,
        filters,
        indice_pairs,
        indice_pair_num,
        num_activate_out,
        inverse=False,
        subm=False,
        algo=None,
        timer=None,
        bias=None,
        act_alpha=0.0,
        act_beta=0.0,
        act_type=None,
        **kwargs,
    ):
        if features.is_cuda:
            kw = dict(bias=bias, act_alpha=act_alpha, act_beta=act_beta, **kwargs)
            if algo is not None:
                kw["algo"] = algo
            if timer is not None:
                kw["timer"] = timer
            if act_type is not None:
                kw["act_type"] = act_type
            return original_conv(
                features, filters, indice_pairs, indice_pair_num, num_activate_out, inverse, subm, **kw
            )
        if act_type is not None and act_type != ops.tv.gemm.Activation.None_:
            raise ValueError(f"act_type: fused activations are not supported on CPU, got {act_type}")
        return indice_conv_cpu(
            features, filters, indice_pairs, indice_pair_num, num_activate_out, inverse, subm, bias
        )

    def indice_conv_backward(
        features,
        filters,
        out_bp,
        indice_pairs,
        indice_pair_num,
        inverse=False,
        subm=False,
        algo=None,
        timer=None,
        **kwargs,
    ):
        if features.is_cuda:
            kw = dict(kwargs)
            if algo is not None:
                kw["algo"] = algo
            if timer is not None:
                kw["timer"] = timer
            return original_backward(
                features, filters, out_bp, indice_pairs, indice_pair_num, inverse, subm, **kw
            )
        return indice_conv_backward_cpu(
            features, filters, out_bp, indice_pairs, indice_pair_num, inverse, subm
        )

    def get_indice_pairs(
        indices, batch_size, spatial_shape, algo, ksize, stride, padding, dilation, out_padding,
        subm=False, transpose=False, *args, **kwargs,
    ):  # fmt: skip
        indices = indices.contiguous()
        if subm and not indices.is_cuda and all(k % 2 for k in ksize):
            return subm_indice_pairs_cpu(
                indices, batch_size, list(spatial_shape), list(ksize), list(dilation)
            )
        return original_pairs(
            indices, batch_size, spatial_shape, algo, ksize, stride, padding, dilation, out_padding,
            subm, transpose, *args, **kwargs,
        )  # fmt: skip

    get_indice_pairs.__wrapped__ = original_pairs

    def get_indice_pairs_implicit_gemm(indices, *args, **kwargs):
        return original_pairs_igemm(indices.contiguous(), *args, **kwargs)

    ops.get_indice_pairs = get_indice_pairs
    ops.get_indice_pairs_implicit_gemm = get_indice_pairs_implicit_gemm
    ops.indice_conv = indice_conv
    ops.indice_conv_backward = indice_conv_backward
    if not torch.cuda.is_available():
        ops.get_current_stream = lambda: 0
    setattr(ops, _PATCH_MARK, True)


apply_cpu_fixes()
