"""Multi-head attention and transformer layers used by the Pointformer blocks.

All modules are batch-first: sequences ``(b, n, C)``. A "batch" here is a set of independent
sequences (the balls of the Local Transformer, or the points of one cloud for the Global
Transformer); clouds are never mixed inside a sequence.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pc3d.models.resolve import resolve_class


class MultiHeadAttention(nn.Module):
    """Multi-head scaled dot-product attention with an optional Linformer K/V projection.

    Args:
        dim: model width ``C`` (divisible by ``num_heads``).
        num_heads: number of heads.
        dropout: dropout on the attention weights.
        kv_len: maximum key/value sequence length ``m``; needed only when ``kv_ratio > 1``.
        kv_ratio: Linformer ratio. When ``> 1`` keys and values are projected along the sequence
            axis by learned matrices ``E, F`` of shape ``(kv_len // kv_ratio, kv_len)`` (Wang et al.
            2020). Shorter sequences use the first ``m`` columns (identical to zero-padding the
            keys/values to ``kv_len``); longer ones raise ``ValueError``.
    """

    def __init__(
        self, dim: int, num_heads: int, dropout: float = 0.0, kv_len: int | None = None, kv_ratio: int = 1
    ) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f"num_heads: dim={dim} is not divisible by num_heads={num_heads}")
        if kv_ratio < 1:
            raise ValueError(f"kv_ratio: expected >= 1, got {kv_ratio}")
        self.dim, self.num_heads, self.dropout = dim, num_heads, dropout
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        self.kv_len = kv_len
        if kv_ratio > 1:
            if kv_len is None or kv_len < kv_ratio:
                raise ValueError(
                    f"kv_len: Linformer (kv_ratio={kv_ratio}) needs kv_len >= kv_ratio, got {kv_len}"
                )
            k = kv_len // kv_ratio
            self.lin_e = nn.Parameter(torch.randn(k, kv_len) / math.sqrt(k))
            self.lin_f = nn.Parameter(torch.randn(k, kv_len) / math.sqrt(k))
        else:
            self.lin_e = self.lin_f = None

    @property
    def linformer(self) -> bool:
        return self.lin_e is not None

    def _heads(self, x: Tensor) -> Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.dim // self.num_heads).transpose(1, 2)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor | None = None,
        need_weights: bool = False,
        xyz: Tensor | None = None,
    ) -> tuple[Tensor, Tensor | None]:
        """``query (b, n, C)``, ``key/value (b, m, C)`` -> ``(out (b, n, C), weights (b, n, m') | None)``.

        ``weights`` are the softmax attention maps averaged over heads (``m' = m``, or the Linformer
        length when the projection is enabled). ``xyz``, the points' positions that other attentions
        use, is not needed here.
        """
        value = key if value is None else value
        k, v = self.k_proj(key), self.v_proj(value)
        if self.linformer:
            m = k.shape[1]
            if m > self.kv_len:
                raise ValueError(f"key: sequence length {m} exceeds the Linformer kv_len={self.kv_len}")
            k = torch.einsum("km,bmc->bkc", self.lin_e[:, :m], k)
            v = torch.einsum("km,bmc->bkc", self.lin_f[:, :m], v)
        q, k, v = self._heads(self.q_proj(query)), self._heads(k), self._heads(v)
        drop = self.dropout if self.training else 0.0
        if need_weights:
            attn = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
            weights = attn.mean(1)
            out = F.dropout(attn, drop, self.training) @ v
        else:
            weights = None
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=drop)
        b, _, n, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, n, self.dim)), weights


class AgentGlobalAttention(nn.Module):
    """Agent attention over whole clouds, a linear-cost alternative to full attention in the Global Transformer.

    Han et al., "Agent Attention: On the Integration of Softmax and Linear Attention", ECCV 2024:
    ``num_agents`` agent tokens gather from all keys of a sequence, then every query reads from the
    agents, so memory is ``b x heads x A x n`` instead of ``b x heads x n x n``. The two attentions,
    their position biases and the dropout on their maps are
    :class:`~pc3d.models.mixers.agent.AgentAttentionCore`, shared with the serialized U-Net's
    :class:`~pc3d.models.mixers.agent.AgentAttention` mixer.

    Agents: each sequence is one cloud's sampled points in D-FPS order, and D-FPS is greedy, so the
    first ``A`` of ``S`` sampled points are exactly the cloud's ``A``-point D-FPS subset (up to ties):
    well spread over the cloud. The agents are those points' queries, positioned at their xyz
    (refined xyz when coordinate refinement is on). Sequences of fewer than ``A`` points use all of
    them. The paper's depthwise convolution on the values is left out: the sampled points have no
    grid or curve to convolve along.

    Built as ``AgentGlobalAttention(dim, num_heads, dropout, num_agents=64, position_bias=True)``;
    called for self-attention as ``attn(x (b, n, C), x, xyz=(b, n, 3)) -> (out (b, n, C), None)``
    (no attention maps are returned).
    """

    def __init__(
        self, dim: int, num_heads: int, dropout: float = 0.0, num_agents: int = 64, position_bias: bool = True
    ) -> None:
        super().__init__()
        from pc3d.models.mixers.agent import AgentAttentionCore  # the mixer package imports the point kernels

        if num_heads < 1 or dim % num_heads != 0:
            raise ValueError(f"num_heads: dim={dim} is not divisible by num_heads={num_heads}")
        if num_agents < 1:
            raise ValueError(f"num_agents: expected >= 1, got {num_agents}")
        self.dim, self.num_heads, self.num_agents = dim, num_heads, num_agents
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        self.core = AgentAttentionCore(num_heads, position_bias, dropout)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor | None = None,
        need_weights: bool = False,
        xyz: Tensor | None = None,
    ) -> tuple[Tensor, None]:
        """``query, key, value (b, n, C)`` (self-attention: keys share the queries' points), ``xyz (b, n, 3)``."""
        value = key if value is None else value
        b, n, _ = query.shape
        if key.shape[:2] != (b, n) or xyz is None or xyz.shape != (b, n, 3):
            raise ValueError(
                f"xyz: agent attention is self-attention over points with positions (b, n, 3) = ({b}, {n}, 3), "
                f"got keys {tuple(key.shape)} and xyz {None if xyz is None else tuple(xyz.shape)}"
            )
        h, d = self.num_heads, self.dim // self.num_heads
        q = self.q_proj(query).reshape(b * n, h, d)
        k = self.k_proj(key).reshape(b * n, h, d)
        v = self.v_proj(value).reshape(b * n, h, d)
        pos = xyz.reshape(b * n, 3)
        a = min(self.num_agents, n)
        seq = torch.arange(b + 1, device=query.device)
        agent_rows = (seq[:-1, None] * n + torch.arange(a, device=query.device)).reshape(-1)
        out = self.core(q, k, v, pos, q[agent_rows], pos[agent_rows], seq * n, seq * a)
        return self.out_proj(out.reshape(b, n, self.dim)), None

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_heads={self.num_heads}, num_agents={self.num_agents}"


class FeedForward(nn.Sequential):
    """``Linear(C, ratio*C) -> ReLU -> Dropout -> Linear(ratio*C, C)``."""

    def __init__(self, dim: int, ratio: float = 2.0, dropout: float = 0.0) -> None:
        hidden = int(round(dim * ratio))
        super().__init__(
            nn.Linear(dim, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(hidden, dim)
        )


class TransformerEncoderLayer(nn.Module):
    """Self-attention + FFN, each with a residual and LayerNorm (pre-norm or post-norm).

    Pre-norm is textbook pre-LN (``x + Attn(LN(x))``); the official release's variant that starts
    the residual from the normalised tensor is not reproduced.

    The attention is :class:`MultiHeadAttention` (with the Linformer options ``kv_len``,
    ``kv_ratio``) unless ``attention`` names another class (or dotted class path, e.g.
    :class:`AgentGlobalAttention`), built as ``attention(dim=, num_heads=, dropout=, **attention_args)``
    and called as ``attn(x, x, need_weights=, xyz=)`` with the points' positions ``xyz (b, n, 3)``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        ffn_ratio: float = 2.0,
        dropout: float = 0.0,
        prenorm: bool = True,
        kv_len: int | None = None,
        kv_ratio: int = 1,
        attention: Callable[..., nn.Module] | str | None = None,
        attention_args: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.prenorm = prenorm
        if attention is None:
            self.attn = MultiHeadAttention(dim, num_heads, dropout, kv_len, kv_ratio)
        elif kv_ratio > 1:
            raise ValueError(
                f"kv_ratio: the Linformer projection needs the default attention, got {attention!r}"
            )
        else:
            args = dict(attention_args or {})
            self.attn = resolve_class(attention, "attention")(
                dim=dim, num_heads=num_heads, dropout=dropout, **args
            )
        self.ffn = FeedForward(dim, ffn_ratio, dropout)
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    def forward(
        self, x: Tensor, need_weights: bool = False, xyz: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """``x (b, n, C)`` -> ``(x (b, n, C), weights (b, n, n) | None)``; ``xyz (b, n, 3)`` goes to the attention when given."""
        h = self.norm1(x) if self.prenorm else x
        a, w = self.attn(h, h, need_weights=need_weights, xyz=xyz)
        if self.prenorm:
            x = x + self.drop(a)
            x = x + self.drop(self.ffn(self.norm2(x)))
        else:
            x = self.norm1(x + self.drop(a))
            x = self.norm2(x + self.drop(self.ffn(x)))
        return x, w


class TransformerDecoderLayer(nn.Module):
    """Self-attention on ``tgt``, cross-attention ``tgt -> memory`` (memory has its own LayerNorm), FFN."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        ffn_ratio: float = 2.0,
        dropout: float = 0.0,
        prenorm: bool = True,
        kv_len: int | None = None,
        kv_ratio: int = 1,
    ) -> None:
        super().__init__()
        self.prenorm = prenorm
        self.self_attn = MultiHeadAttention(dim, num_heads, dropout)
        self.cross_attn = MultiHeadAttention(dim, num_heads, dropout, kv_len, kv_ratio)
        self.ffn = FeedForward(dim, ffn_ratio, dropout)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.norm_mem = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, tgt: Tensor, memory: Tensor) -> Tensor:
        """``tgt (b, n, C)``, ``memory (b, m, C)`` -> ``(b, n, C)``."""
        mem = self.norm_mem(memory)
        x = tgt
        if self.prenorm:
            h = self.norm1(x)
            x = x + self.drop(self.self_attn(h, h)[0])
            x = x + self.drop(self.cross_attn(self.norm2(x), mem)[0])
            x = x + self.drop(self.ffn(self.norm3(x)))
        else:
            x = self.norm1(x + self.drop(self.self_attn(x, x)[0]))
            x = self.norm2(x + self.drop(self.cross_attn(x, mem)[0]))
            x = self.norm3(x + self.drop(self.ffn(x)))
        return x


class PositionEncoding(nn.Module):
    """Pointformer position encoding: ``Linear(3, C/2) -> BN -> ReLU -> Linear(C/2, C)``.

    Applied row-wise to ``(..., 3)`` coordinates, returning ``(..., C)``.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        hidden = max(dim // 2, 1)
        self.fc1 = nn.Linear(3, hidden, bias=False)
        self.bn = nn.BatchNorm1d(hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, xyz: Tensor) -> Tensor:
        shape = xyz.shape[:-1]
        h = torch.relu(self.bn(self.fc1(xyz.reshape(-1, 3))))
        return self.fc2(h).reshape(*shape, -1)
