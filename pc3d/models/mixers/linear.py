"""Global linear attention over each packed cloud: kernel feature maps and the two normalisations.

Linear attention replaces ``softmax(q k^T) v`` by ``phi(q) (phi(k)^T v)``: every cloud keeps one
``(H, D, E)`` state ``sum_j phi(k_j)^T v_j`` and each of its rows reads it with its own query, so the
cost is linear in the number of rows and the attention is global over the cloud. Two ways of turning
the scores ``s_ij = phi(q_i) . phi(k_j)`` into weights share that state:

- division (:func:`divided_linear_attention`): ``w_ij = s_ij / sum_j' s_ij'``, the usual form
  (Katharopoulos et al., ICML 2020), used by MLLA;
- subtraction (:func:`injective_linear_attention`): ``w_ij = (s_ij - mean_j' s_ij' + 1) / n``,
  the injective form of InLine attention.

Both work on heads ``(N, H, D)`` with clouds packed by ``offsets (B+1,)`` and never mix two clouds.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from pc3d.models.mixers.packed import cloud_apply, cloud_kv, cloud_sum, expand_clouds


def _elu_plus_one(x: Tensor) -> Tensor:
    return F.elu(x) + 1.0


def _identity(x: Tensor) -> Tensor:
    return x


FEATURE_MAPS: dict[str, Callable[[Tensor], Tensor]] = {
    "elu": _elu_plus_one,
    "relu": F.relu,
    "identity": _identity,
}
"""Kernel feature maps ``phi``: ``"elu"`` is ``ELU(x) + 1`` (positive), ``"relu"``, ``"identity"``."""


def feature_map(name: str) -> Callable[[Tensor], Tensor]:
    """The kernel feature map called ``name`` (a key of :data:`FEATURE_MAPS`)."""
    if name not in FEATURE_MAPS:
        raise ValueError(f"kernel: expected one of {sorted(FEATURE_MAPS)}, got {name!r}")
    return FEATURE_MAPS[name]


def split_heads(x: Tensor, num_heads: int) -> Tensor:
    """``(N, H * D) -> (N, H, D)``."""
    return x.reshape(x.shape[0], num_heads, -1)


def cloud_mean(x: Tensor, offsets: Tensor) -> Tensor:
    """Per-cloud mean of ``x (N, ...)``: ``(B, ...)`` (zeros for an empty cloud), summed in float32."""
    counts = (offsets[1:] - offsets[:-1]).clamp_min(1).to(x.device, torch.float32)
    return (cloud_sum(x, offsets) / counts.view(-1, *([1] * (x.dim() - 1)))).to(x.dtype)


def mean_kv_state(k: Tensor, v: Tensor, offsets: Tensor) -> Tensor:
    """Per-cloud, per-head ``mean_j k_j^T v_j``: ``k (N, H, D)``, ``v (N, H, E)`` -> ``(B, H, D, E)`` in
    ``k``'s dtype (summed and divided in float32, so half precision neither overflows nor loses the mean)."""
    counts = (offsets[1:] - offsets[:-1]).clamp_min(1).to(k.device, torch.float32)
    return (cloud_kv(k, v, offsets) / counts.view(-1, 1, 1, 1)).to(k.dtype)


def divided_linear_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    offsets: Tensor,
    q_score: Tensor | None = None,
    k_score: Tensor | None = None,
    eps: float = 1e-6,
) -> Tensor:
    """``out_i = sum_j (q_i . k_j) v_j / sum_j (qs_i . ks_j)`` over ``i``'s cloud: ``(N, H, E)``.

    ``q, k (N, H, D)`` (after the feature map), ``v (N, H, E)``, ``offsets (B+1,)``. The normaliser
    uses ``q_score, k_score (N, H, D)`` when given (default ``q``, ``k``): with a positional encoding
    that rotates ``q`` and ``k``, the numerator takes the rotated pair and the normaliser the
    unrotated, positive one. Numerator and normaliser are both formed from per-cloud means (sums
    accumulated in float32, then divided by the cloud's size), which leaves the ratio unchanged but
    keeps the magnitudes independent of the cloud size; ``eps`` is added to the (mean) normaliser.
    """
    q_score = q if q_score is None else q_score
    k_score = k if k_score is None else k_score
    num = cloud_apply(q, mean_kv_state(k, v, offsets), offsets)
    den = (q_score * expand_clouds(cloud_mean(k_score, offsets), offsets)).sum(-1, keepdim=True)
    return num / (den + eps)


def injective_linear_attention(q: Tensor, k: Tensor, v: Tensor, offsets: Tensor) -> Tensor:
    """``out_i = sum_j w_ij v_j`` over ``i``'s cloud of ``n`` rows, ``w_ij = (s_ij - mean_j' s_ij' + 1) / n``.

    ``q, k (N, H, D)`` (after the feature map), ``v (N, H, E)``, ``offsets (B+1,)`` -> ``(N, H, E)``;
    ``s_ij = q_i . k_j``. The weights of a row sum to 1 by construction, and two queries get the same
    weights only if their scores differ by a constant. The scores are divided by the cloud's size
    ``n``: ``w_ij`` is then the first-order expansion of ``softmax_j(s_ij)`` around equal scores, and
    the output's magnitude does not grow with the cloud's size. It is ``q_i S + vbar`` with the per-cloud state ``S = mean_j (k_j - kbar)^T v_j`` and
    mean value ``vbar``; centring the keys first avoids subtracting two large sums.
    """
    k_centred = k - expand_clouds(cloud_mean(k, offsets), offsets)
    state = mean_kv_state(k_centred, v, offsets)
    return cloud_apply(q, state, offsets) + expand_clouds(cloud_mean(v, offsets), offsets)


__all__ = [
    "FEATURE_MAPS",
    "cloud_mean",
    "divided_linear_attention",
    "feature_map",
    "injective_linear_attention",
    "mean_kv_state",
    "split_heads",
]
