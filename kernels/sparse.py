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
``ops.indice_conv_backward`` are replaced by a gather-GEMM-scatter written with torch ops on
spconv's own indice pairs (``index_add_`` is race-free and uses every thread for the GEMMs),
with the bias added in the same function. CUDA tensors go to spconv's original functions
untouched. The indice-pair builders get contiguous indices. ``ops.get_current_stream`` returns 0 when CUDA is unavailable, for the remaining CPU
paths (pooling backward). The patch is applied once, at import, idempotently.
"""

from __future__ import annotations

import spconv.pytorch as spconv
import torch
from spconv.pytorch import ops
from torch import Tensor

__all__ = ["spconv", "apply_cpu_fixes", "indice_conv_cpu", "indice_conv_backward_cpu"]

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
    center = kv // 2
    features = features.contiguous()
    if subm:
        out = features @ w[:, center].T
    else:
        out = features.new_zeros((num_activate_out, w.shape[0]))
    pair_in, pair_out = indice_pairs[int(inverse)], indice_pairs[int(not inverse)]
    for k, n in enumerate(_pair_counts(indice_pair_num, kv, subm)):
        if n <= 0 or (subm and k == center):
            continue
        rows_in = pair_in[k, :n].long()
        rows_out = pair_out[k, :n].long()
        out.index_add_(0, rows_out, features[rows_in] @ w[:, k].T)
    if bias is not None:
        out += bias
    return out


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
    center = kv // 2
    features = features.contiguous()
    out_bp = out_bp.contiguous()
    d_w = torch.zeros_like(w)
    if subm:
        d_features = out_bp @ w[:, center]
        d_w[:, center] = out_bp.T @ features
    else:
        d_features = torch.zeros_like(features)
    pair_in, pair_out = indice_pairs[int(inverse)], indice_pairs[int(not inverse)]
    for k, n in enumerate(_pair_counts(indice_pair_num, kv, subm)):
        if n <= 0 or (subm and k == center):
            continue
        rows_in = pair_in[k, :n].long()
        g = out_bp[pair_out[k, :n].long()]
        d_features.index_add_(0, rows_in, g @ w[:, k])
        d_w[:, k] = g.T @ features[rows_in]
    return d_features, d_w.reshape(filters.shape)


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

    def get_indice_pairs(indices, *args, **kwargs):
        return original_pairs(indices.contiguous(), *args, **kwargs)

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
