"""Agent attention in Pointformer's Global Transformer: D-FPS agents, a plain reference, isolation, scale."""

from __future__ import annotations

import math

import pytest
import torch

from pc3d.data.batch import offsets_from_counts
from pc3d.models.pointformer import Pointformer
from pc3d.models.pointformer_layers import GlobalTransformer, MultiHeadAttention
from pc3d.models.pointformer_layers.attention import AgentGlobalAttention
from pc3d.models.pointformer_layers.grouping import sample

AGENT = "pc3d.models.pointformer_layers.attention.AgentGlobalAttention"


def reference_agent_attention(attn: AgentGlobalAttention, x: torch.Tensor, xyz: torch.Tensor) -> torch.Tensor:
    """Sequence by sequence and head by head, with explicit (A, n) and (n, A) softmax matrices."""
    b, n, c = x.shape
    h = attn.num_heads
    d, a = c // h, min(attn.num_agents, n)
    q, k, v = attn.q_proj(x), attn.k_proj(x), attn.v_proj(x)
    agg, bc = attn.core.aggregation_bias, attn.core.broadcast_bias
    out = torch.zeros(b, n, c)
    for s in range(b):
        pos = xyz[s]
        radius = max(float(((pos - pos.mean(0)) ** 2).sum(1).mean().sqrt()), 1e-6)
        r = (pos[:, None, :] - pos[None, :a, :]) / radius  # (n, A, 3): point minus agent
        for j in range(h):
            cols = slice(j * d, (j + 1) * d)
            qh, kh, vh = q[s, :, cols], k[s, :, cols], v[s, :, cols]
            agents = qh[:a]  # the first A points of the sequence
            agg_logits = agents @ kh.t() / math.sqrt(d)  # (A, n)
            agg_logits = (
                agg_logits + (-(r**2 * agg.log_width[j].exp()).sum(-1) + (r * agg.shift[j]).sum(-1)).t()
            )
            bc_logits = qh @ agents.t() / math.sqrt(d)  # (n, A)
            bc_logits = bc_logits + (-(r**2 * bc.log_width[j].exp()).sum(-1) + (r * bc.shift[j]).sum(-1))
            out[s, :, cols] = torch.softmax(bc_logits, dim=1) @ (torch.softmax(agg_logits, dim=1) @ vh)
    return attn.out_proj(out)


def agent_gt(num_agents: int = 8, **kw) -> GlobalTransformer:
    torch.manual_seed(0)
    gt = GlobalTransformer(
        16, 8, num_heads=2, num_layers=2, attention=AGENT, attention_args={"num_agents": num_agents}, **kw
    )
    with torch.no_grad():
        for p in gt.parameters():
            p.add_(0.05 * torch.randn_like(p))  # non-trivial position biases
    return gt.eval()


def test_first_sampled_points_are_the_smaller_fps_subset():
    g = torch.Generator().manual_seed(1)
    xyz = torch.rand(700, 3, generator=g) * torch.tensor([4.0, 3.0, 1.0])
    off = offsets_from_counts([400, 300])
    idx, _ = sample(xyz, off, 128)
    small, _ = sample(xyz, off, 16)
    torch.testing.assert_close(torch.cat([idx[:16], idx[128:144]]), small)


@pytest.mark.parametrize(("n", "num_agents"), [(20, 6), (4, 6), (1, 3)])
def test_agent_global_attention_matches_a_plain_reference(n, num_agents):
    torch.manual_seed(0)
    attn = AgentGlobalAttention(12, 3, num_agents=num_agents).eval()
    with torch.no_grad():
        for bias in (attn.core.aggregation_bias, attn.core.broadcast_bias):
            bias.log_width.normal_(0.0, 0.7)
            bias.shift.normal_(0.0, 1.0)
    x, xyz = torch.randn(3, n, 12), torch.rand(3, n, 3) * 2.0
    with torch.no_grad():
        out, weights = attn(x, x, xyz=xyz)
        torch.testing.assert_close(out, reference_agent_attention(attn, x, xyz), atol=1e-5, rtol=1e-4)
    assert weights is None and out.shape == (3, n, 12)


def test_agent_global_transformer_keeps_clouds_apart():
    gt = agent_gt()
    g = torch.Generator().manual_seed(2)
    xyz, feat = torch.rand(50, 3, generator=g) * 3.0, torch.randn(50, 16, generator=g)
    off = torch.tensor([0, 30, 50])
    packed = gt(xyz, feat, off)
    alone = [gt(xyz[:30], feat[:30], torch.tensor([0, 30])), gt(xyz[30:], feat[30:], torch.tensor([0, 20]))]
    torch.testing.assert_close(packed, torch.cat(alone), atol=1e-5, rtol=1e-5)
    x = feat.clone().requires_grad_(True)
    gt(xyz, x, off)[:30].sum().backward()
    grad = x.grad.abs().sum(1)
    assert grad[30:].max() == 0 and bool((grad[:30] > 0).all())
    # the agent attention is in use, and positions matter through its biases
    assert isinstance(gt.layers[0].attn, AgentGlobalAttention)
    gt.layers[0].attn.core.aggregation_bias.shift.data += 1.0
    assert not torch.allclose(gt(xyz, feat, off), packed, atol=1e-4)


def test_agent_global_transformer_on_a_cloud_too_large_for_full_attention():
    torch.manual_seed(0)
    n = 16384  # full attention: 4 heads x n x n floats = 4 GiB per layer
    gt = GlobalTransformer(
        32, 16, num_heads=4, num_layers=1, attention=AgentGlobalAttention, attention_args={"num_agents": 64}
    )
    xyz, feat = torch.rand(n, 3) * torch.tensor([40.0, 40.0, 3.0]), torch.randn(n, 32)
    out = gt.train()(xyz, feat, torch.tensor([0, n]))
    out.square().mean().backward()
    assert out.shape == (n, 16) and torch.isfinite(out).all()
    grads = [p.grad for p in gt.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def tiny_backbone(**kw) -> Pointformer:
    torch.manual_seed(0)
    args = dict(in_channels=1, stem_channels=16, num_points=(64, 32, 16, 8), radii=(0.4, 0.6, 0.9, 1.4),
                num_samples=(8, 8, 8, 8), dims=(16, 32, 32, 32), out_channels=(32, 32, 32, 32), num_heads=2,
                num_local_layers=1, num_global_layers=1, global_dropout=0.0, fp_channels=((32, 32), (32, 32)))  # fmt: skip
    return Pointformer(**{**args, **kw})


def test_pointformer_with_agent_global_attention():
    g = torch.Generator().manual_seed(0)
    coord = torch.rand(270, 3, generator=g) * torch.tensor([3.0, 3.0, 1.5])
    feat, off = coord[:, 2:3].clone(), offsets_from_counts([150, 120])
    m = tiny_backbone(global_attention=AGENT, global_attention_args={"num_agents": 8}, refine=True).eval()
    assert all(isinstance(b.glob.layers[0].attn, AgentGlobalAttention) for b in m.blocks)
    assert m.blocks[0].glob.layers[0].attn.num_agents == 8
    x = feat.clone().requires_grad_(True)
    both = m(coord, x, off)["seed_feat"]
    alone = m(coord[:150], feat[:150], torch.tensor([0, 150]))["seed_feat"]
    torch.testing.assert_close(both[:32], alone, atol=1e-5, rtol=1e-4)
    both[:32].sum().backward()
    assert x.grad[150:].abs().max() == 0 and x.grad[:150].abs().max() > 0
    # one attention per block; the default stays full attention
    mixed = tiny_backbone(global_attention=[None, AgentGlobalAttention, None, None])
    kinds = [type(b.glob.layers[0].attn) for b in mixed.blocks]
    assert kinds == [MultiHeadAttention, AgentGlobalAttention, MultiHeadAttention, MultiHeadAttention]
    assert all(type(b.glob.layers[0].attn) is MultiHeadAttention for b in tiny_backbone().blocks)


def test_agent_global_attention_rejects_bad_arguments():
    with pytest.raises(ValueError, match="num_agents"):
        AgentGlobalAttention(16, 2, num_agents=0)
    with pytest.raises(ValueError, match="num_heads"):
        AgentGlobalAttention(16, 3)
    with pytest.raises(ValueError, match="kv_ratio"):
        GlobalTransformer(16, 8, seq_len=32, kv_ratio=2, attention=AGENT)
    with pytest.raises(ValueError, match="attention"):
        GlobalTransformer(16, 8, attention="pc3d.models.pointformer_layers.attention.NoSuchAttention")
    with pytest.raises(ValueError, match="global_attention"):
        tiny_backbone(global_attention=[AGENT, None])
    with pytest.raises(ValueError, match="xyz"):
        AgentGlobalAttention(16, 2)(torch.randn(1, 5, 16), torch.randn(1, 5, 16))
