"""Agent attention on packed point clouds: the per-cloud core and the serialized U-Net mixer.

Dongchen Han, Tianzhu Ye, Yizeng Han, Zhuofan Xia, Siyuan Pan, Pengfei Wan, Shiji Song and Gao Huang,
"Agent Attention: On the Integration of Softmax and Linear Attention", ECCV 2024.

A small set of ``A`` agent tokens stands between the queries and the keys. The agents first gather
from every key of the sequence (agent aggregation, a softmax over the keys), then every query reads
from the agents (agent broadcast, a softmax over the agents), so each query still sees the whole
sequence through two softmax attentions at a cost of ``heads x A x n`` instead of ``n x n``.

How the 2D method maps to packed point clouds:

* The sequence is one cloud: rows ``offsets[b]:offsets[b+1]``. Agents, keys and values never leave
  their cloud.
* Agents are pooled from the queries. On an image the paper average-pools the query map to a small
  grid; here :class:`AgentAttention` average-pools each cloud's queries along the block's
  serialization curve (:func:`~pc3d.models.mixers.packed.curve_tokens`), so an agent summarises a
  contiguous stretch of the curve, i.e. a compact region of space, and its position is the mean
  ``point.coord`` of that stretch (its centroid).
* The paper's agent bias (learned biases between the agent grid and the image grid) becomes a
  function of the offset ``r`` from a point to an agent's centroid, measured in units of the cloud's
  RMS radius (so it does not depend on the cloud's size): per head,
  ``bias_h(r) = -sum_j w_hj r_j^2 + s_h . r`` with learned widths ``w_hj > 0`` and shift ``s_h``
  (:class:`AgentPositionBias`), a learned anisotropic Gaussian log-kernel around a shifted centre.
  Aggregation and broadcast have separate biases. Its cost is that of the attention logits.
* The paper's depthwise convolution on the values, added to the output, becomes a depthwise conv
  along the block's curve (:class:`~pc3d.models.mixers.packed.SerializedDepthwiseConv`).

:class:`AgentAttentionCore` is shared with the Pointformer Global Transformer's agent attention
(:class:`~pc3d.models.pointformer_layers.attention.AgentGlobalAttention`), which takes its agents
from the sampled points themselves.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from pc3d.models.mixers.packed import SerializedDepthwiseConv, cloud_slices, curve_tokens, head_dim
from pc3d.models.point import SerializedPoints


class AgentPositionBias(nn.Module):
    """Per-head bias from point-to-agent offsets: ``bias_h(r) = -sum_j exp(log_width[h, j]) r_j^2 + shift[h] . r``.

    Widths start spread over heads (0.5 to 8 per squared RMS radius), so some heads start local and
    some nearly global; shifts start at zero. With ``r = p - a`` the bias splits into a term of the point
    alone, a term of the agent alone and a product of the two (:meth:`terms`), so it is never formed as
    an ``(n, A, 3)`` tensor: the product joins the attention logits' matmul, and a softmax over the
    agents drops the point's term (over the keys, the agent's term).
    """

    def __init__(self, num_heads: int) -> None:
        super().__init__()
        widths = torch.logspace(-1.0, 3.0, num_heads, base=2.0) if num_heads > 1 else torch.tensor([2.0])
        self.log_width = nn.Parameter(widths.log()[:, None].repeat(1, 3))
        self.shift = nn.Parameter(torch.zeros(num_heads, 3))

    def terms(self, p: Tensor, a: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``bias_h(p_n - a_m) = point[n, h] + agent[m, h] + cross[n, h] . a_m`` for ``p (n, 3)``, ``a (A, 3)``.

        Returns ``point (n, H)``, ``agent (A, H)`` and ``cross (n, H, 3)``.
        """
        w, s = self.log_width.exp().to(p.dtype), self.shift.to(p.dtype)  # (H, 3) each
        point = -(p * p) @ w.t() + p @ s.t()
        agent = -(a * a) @ w.t() - a @ s.t()
        return point, agent, 2.0 * p[:, None, :] * w[None]


class AgentAttentionCore(nn.Module):
    """Agent aggregation then agent broadcast, per cloud, for given queries, keys, values and agents.

    ``forward(q (N, H, D), k (N, H, D), v (N, H, E), pos (N, 3), agents (M, H, D), agent_pos (M, 3),
    offsets (B+1,), agent_offsets (B+1,)) -> (N, H, E)``: cloud ``b`` owns rows
    ``offsets[b]:offsets[b+1]`` and agents ``agent_offsets[b]:agent_offsets[b+1]`` (at least one
    when the cloud has rows). Per cloud of ``n`` rows and ``A`` agents::

        V_A = softmax_keys(agents k^T / sqrt(D) + bias_agg)  v      # (H, A, E)
        out = softmax_agents(q agents^T / sqrt(D) + bias_bc)  V_A   # (H, n, E)

    with the biases of :class:`AgentPositionBias` on ``pos - agent_pos`` (``position_bias=False``:
    no bias, and ``pos``/``agent_pos`` may be ``None``). Memory per cloud is ``O(H A n)``. ``dropout``
    applies to both attention maps in training; ``scale`` defaults to ``D ** -0.5``.
    """

    def __init__(
        self, num_heads: int, position_bias: bool = True, dropout: float = 0.0, scale: float | None = None
    ) -> None:
        super().__init__()
        if scale is not None and not scale > 0:
            raise ValueError(f"qk_scale: expected None or a positive float, got {scale}")
        self.scale = scale
        if num_heads < 1:
            raise ValueError(f"num_heads: expected >= 1, got {num_heads}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1), got {dropout}")
        self.num_heads = num_heads
        self.aggregation_bias = AgentPositionBias(num_heads) if position_bias else None
        self.broadcast_bias = AgentPositionBias(num_heads) if position_bias else None
        self.drop = nn.Dropout(dropout)

    def forward(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        pos: Tensor | None,
        agents: Tensor,
        agent_pos: Tensor | None,
        offsets: Tensor,
        agent_offsets: Tensor,
    ) -> Tensor:
        parts = []
        for rows, arows in zip(cloud_slices(offsets), cloud_slices(agent_offsets)):
            if rows.stop > rows.start:
                cloud_pos = (
                    (pos[rows], agent_pos[arows]) if pos is not None and agent_pos is not None else None
                )
                parts.append(self._cloud(q[rows], k[rows], v[rows], agents[arows], cloud_pos))
        return torch.cat(parts) if parts else v.new_zeros(0, *v.shape[1:])

    def _cloud(
        self, q: Tensor, k: Tensor, v: Tensor, agents: Tensor, pos: tuple[Tensor, Tensor] | None
    ) -> Tensor:
        """One cloud: ``q, k (n, H, D)``, ``v (n, H, E)``, ``agents (A, H, D)``, ``pos`` the rows' and the
        agents' positions ``((n, 3), (A, 3))`` -> ``(n, H, E)``."""
        scale = self.scale or 1.0 / math.sqrt(q.shape[-1])
        q, agents_q = q * scale, agents * scale
        point_agg = agent_bc = None
        if self.aggregation_bias is not None and self.broadcast_bias is not None:
            if pos is None:
                raise ValueError("pos/agent_pos: the position biases need the points' and agents' positions")
            p, a = cloud_frame(*pos)
            point_agg, _, cross_agg = self.aggregation_bias.terms(p, a)
            _, agent_bc, cross_bc = self.broadcast_bias.terms(p, a)
            # the point-agent products ride along the logits' matmuls as 3 extra channels per head
            a_heads = a[:, None, :].expand(-1, q.shape[1], -1).to(q.dtype)
            agents_q, k = torch.cat([agents_q, a_heads], -1), torch.cat([k, cross_agg.to(k.dtype)], -1)
            q, agents = torch.cat([q, cross_bc.to(q.dtype)], -1), torch.cat([agents, a_heads], -1)
        aggregate = torch.einsum("ahd,nhd->han", agents_q, k)  # (H, A, n), softmax over the keys
        broadcast = torch.einsum("nhd,ahd->hna", q, agents)  # (H, n, A), softmax over the agents
        if point_agg is not None and agent_bc is not None:
            aggregate = aggregate + point_agg.t()[:, None, :].to(aggregate.dtype)
            broadcast = broadcast + agent_bc.t()[:, None, :].to(broadcast.dtype)
        agent_v = self.drop(aggregate.softmax(-1)) @ v.transpose(0, 1)  # (H, A, E)
        return (self.drop(broadcast.softmax(-1)) @ agent_v).transpose(0, 1)


def cloud_frame(pos: Tensor, agent_pos: Tensor) -> tuple[Tensor, Tensor]:
    """``pos (n, 3)`` and ``agent_pos (A, 3)`` about the cloud's centroid, in units of its RMS radius
    (float32): the frame of the position bias, whose offsets ``p - a`` do not depend on the centre."""
    pos, agent_pos = pos.float(), agent_pos.float()
    centre = pos.mean(0)
    radius = (pos - centre).square().sum(1).mean().sqrt().clamp_min(1e-6)
    return (pos - centre) / radius, (agent_pos - centre) / radius


class AgentAttention(nn.Module):
    """Agent attention over every cloud, agents pooled along the block's curve (a MixerUNet mixer).

    ``forward(x (N, C), point, order_index) -> (N, C)``: ``q, k, v = Linear(x)``; each cloud's queries
    are average-pooled along ``point.order[order_index]`` into ``num_agents`` agents (a cloud with
    fewer rows has one agent per row), whose positions are the pooled ``point.coord``;
    :class:`AgentAttentionCore` mixes the cloud; a depthwise conv of ``v`` along the curve
    (``dwc_kernel``; 0 turns it off) is added; a linear layer projects the result.

    Args:
        channels: width ``C``, divisible by ``num_heads``.
        num_heads: attention heads.
        num_agents: agents per cloud, ``A >= 1``.
        dwc_kernel: kernel of the depthwise conv on the values along the curve (odd, or 0 for none).
        position_bias: add the point-to-agent position biases of :class:`AgentPositionBias`.
        qkv_bias: bias of the query/key/value projection.
        attn_drop: dropout on both attention maps.
        proj_drop: dropout after the output projection.
    """

    def __init__(
        self,
        channels: int,
        num_heads: int = 4,
        num_agents: int = 64,
        dwc_kernel: int = 3,
        position_bias: bool = True,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ) -> None:
        super().__init__()
        head_dim(channels, num_heads)
        if num_agents < 1:
            raise ValueError(f"num_agents: expected >= 1, got {num_agents}")
        if not 0.0 <= attn_drop < 1.0:
            raise ValueError(f"attn_drop: expected a probability in [0, 1), got {attn_drop}")
        if dwc_kernel < 0 or (dwc_kernel and dwc_kernel % 2 == 0):
            raise ValueError(f"dwc_kernel: expected an odd kernel size or 0 (no conv), got {dwc_kernel}")
        if not 0.0 <= proj_drop < 1.0:
            raise ValueError(f"proj_drop: expected a probability in [0, 1), got {proj_drop}")
        self.num_heads, self.num_agents = num_heads, num_agents
        self.qkv = nn.Linear(channels, 3 * channels, bias=qkv_bias)
        self.core = AgentAttentionCore(num_heads, position_bias, attn_drop)
        self.dwc = SerializedDepthwiseConv(channels, dwc_kernel) if dwc_kernel else None
        self.proj = nn.Linear(channels, channels)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: Tensor, point: SerializedPoints, order_index: int) -> Tensor:
        n, c = x.shape
        h, a = self.num_heads, self.num_agents
        q, k, v = self.qkv(x).view(n, 3, h, c // h).unbind(1)
        order, offsets = point.order[order_index], point.offsets
        agents, agent_offsets = curve_tokens(q.reshape(n, c), order, offsets, a)  # (T, C), (B+1,)
        agent_pos, _ = curve_tokens(point.coord, order, offsets, a)  # (T, 3)
        agents = agents.reshape(-1, h, c // h)
        out = self.core(q, k, v, point.coord, agents, agent_pos, offsets, agent_offsets).reshape(n, c)
        if self.dwc is not None:
            out = out + self.dwc(v.reshape(n, c), point, order_index)
        return self.proj_drop(self.proj(out))

    def extra_repr(self) -> str:
        return f"num_heads={self.num_heads}, num_agents={self.num_agents}"


__all__ = ["AgentAttention", "AgentAttentionCore", "AgentPositionBias", "cloud_frame"]
