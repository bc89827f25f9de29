"""Attention mediators as a token mixer of the serialized U-Net.

Pu, Xia, Guo, Han, Li, Li, Yuan, Li, Han, Song, Huang and Li, "Efficient Diffusion Transformer with
Step-wise Dynamic Attention Mediators", ECCV 2024.

Softmax attention ``softmax(Q K^T) V`` over ``n`` tokens is replaced by two softmax attentions through
a small set of ``m`` mediator tokens ``T``: the mediators first attend to the keys and gather a
compressed value set ``V_T = softmax(T K^T) V`` (``m`` rows, softmax over the ``n`` keys), then every
query attends to the mediators, ``O = softmax(Q T^T) V_T`` (softmax over the ``m`` mediators). The cost
is ``O(n m)`` instead of ``O(n^2)``, and the number of mediators can be changed from one forward to the
next (the paper lowers it in the early denoising steps to save compute).

On serialized point clouds the mediators of a cloud are its queries average-pooled over ``m``
contiguous stretches of the block's serialization curve (compact regions of space), so they exist for
any ``m`` and any cloud size, and :attr:`MediatorAttention.num_mediators` (or
:func:`set_num_mediators` on a whole model) changes ``m`` on a built model. Both attentions run per
cloud over all of its rows: the mixer is global over each cloud, linear in its size, and no value of
one cloud reaches another.
"""

from __future__ import annotations

from torch import Tensor, nn

from pc3d.models.mixers.agent import AgentAttentionCore
from pc3d.models.mixers.packed import curve_tokens, head_dim
from pc3d.models.point import SerializedPoints


class MediatorAttention(nn.Module):
    """Multi-head attention through ``num_mediators`` pooled mediator tokens per cloud.

    For a cloud of ``n`` rows with per-head ``Q, K, V (n, d)`` and scale ``s``: the mediators
    ``T (m', d)`` average the queries over ``m' = min(num_mediators, n)`` contiguous stretches of the
    block's curve (``adaptive_avg_pool1d``: mediator ``a`` averages curve positions
    ``floor(a n / m') .. ceil((a + 1) n / m') - 1``; a cloud with no more rows than mediators uses
    each of its queries as one), ``V_T = softmax(s T K^T) V`` and ``out = softmax(s Q T^T) V_T``,
    followed by the output projection.

    Args:
        channels: ``C``, the feature width.
        num_heads: heads ``h``; ``C`` must be divisible by ``h``.
        num_mediators: mediators per cloud ``m >= 1``; settable on a built model.
        qkv_bias: bias of the ``Q, K, V`` projection.
        qk_scale: the softmax scale ``s``; ``None`` for ``(C / h) ** -0.5``.

    ``forward(x (N, C), point, order_index) -> (N, C)``, rows in storage order, clouds packed by
    ``point.offsets (B+1,)``.
    """

    def __init__(
        self,
        channels: int,
        num_heads: int = 1,
        num_mediators: int = 64,
        qkv_bias: bool = True,
        qk_scale: float | None = None,
    ) -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(f"channels: expected >= 1, got {channels}")
        head_dim(channels, num_heads)
        if qk_scale is not None and not qk_scale > 0:
            raise ValueError(f"qk_scale: expected None or a positive float, got {qk_scale}")
        self.num_heads = num_heads
        self.num_mediators = num_mediators
        self.scale = qk_scale or (channels // num_heads) ** -0.5
        self.core = AgentAttentionCore(num_heads, position_bias=False, scale=self.scale)
        self.qkv = nn.Linear(channels, 3 * channels, bias=qkv_bias)
        self.proj = nn.Linear(channels, channels)

    @property
    def num_mediators(self) -> int:
        """Mediator tokens per cloud; may be changed between forwards (e.g. at inference)."""
        return self._num_mediators

    @num_mediators.setter
    def num_mediators(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"num_mediators: expected an int >= 1, got {value!r}")
        self._num_mediators = value

    def forward(self, x: Tensor, point: SerializedPoints, order_index: int) -> Tensor:
        n, c = x.shape
        h = self.num_heads
        q, k, v = self.qkv(x).view(n, 3, h, c // h).unbind(1)  # (N, H, d) each
        order, offsets = point.order[order_index], point.offsets
        mediators, mediator_offsets = curve_tokens(q.reshape(n, c), order, offsets, self.num_mediators)
        out = self.core(q, k, v, None, mediators.view(-1, h, c // h), None, offsets, mediator_offsets)
        return self.proj(out.reshape(n, c))

    def extra_repr(self) -> str:
        return f"num_heads={self.num_heads}, num_mediators={self.num_mediators}"


def set_num_mediators(model: nn.Module, num_mediators: int) -> int:
    """Set the mediator count of every :class:`MediatorAttention` in ``model``; returns how many were set."""
    mixers = [m for m in model.modules() if isinstance(m, MediatorAttention)]
    for m in mixers:
        m.num_mediators = num_mediators
    return len(mixers)


__all__ = ["MediatorAttention", "set_num_mediators"]
