"""Agent attention mixer: per-cloud agent aggregation and broadcast, packing, training, a real crop."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from mixer_checks import (
    check_unet,
    level,
    overfit_scene0000_crop,
    small_unet,
)

from pc3d.models.mixers.agent import AgentAttention


def reference_agent_attention(
    mixer: AgentAttention, x: torch.Tensor, point, order_index: int
) -> torch.Tensor:
    """Agent attention cloud by cloud and head by head, with explicit (A, n) and (n, A) softmax matrices."""
    n_all, c = x.shape
    h, a = mixer.num_heads, mixer.num_agents
    d = c // h
    q, k, v = mixer.qkv(x).split(c, dim=1)
    order = point.order[order_index]
    out = torch.zeros(n_all, c)
    o = point.offsets.tolist()
    for b in range(len(o) - 1):
        rows = order[o[b] : o[b + 1]]  # the cloud's rows along the curve
        n = len(rows)
        if n == 0:
            continue
        m = min(a, n)  # a cloud with fewer rows than agents has one agent per row
        stretches = [rows[math.floor(i * n / m) : math.ceil((i + 1) * n / m)] for i in range(m)]
        agents = torch.stack([q[s].mean(0) for s in stretches])  # (A, C)
        centroids = torch.stack([point.coord[s].mean(0) for s in stretches])  # (A, 3)
        pos = point.coord[rows]
        radius = max(float(((pos - pos.mean(0)) ** 2).sum(1).mean().sqrt()), 1e-6)
        r = (pos[:, None, :] - centroids[None, :, :]) / radius  # (n, A, 3): point minus agent
        for j in range(h):
            cols = slice(j * d, (j + 1) * d)
            qh, kh, vh, ah = q[rows, cols], k[rows, cols], v[rows, cols], agents[:, cols]
            agg_logits = ah @ kh.t() / math.sqrt(d)  # (A, n)
            bc_logits = qh @ ah.t() / math.sqrt(d)  # (n, A)
            if mixer.core.aggregation_bias is not None:
                agg, bc = mixer.core.aggregation_bias, mixer.core.broadcast_bias
                agg_logits = (
                    agg_logits + (-(r**2 * agg.log_width[j].exp()).sum(-1) + (r * agg.shift[j]).sum(-1)).t()
                )
                bc_logits = bc_logits + (-(r**2 * bc.log_width[j].exp()).sum(-1) + (r * bc.shift[j]).sum(-1))
            agg_weights = torch.softmax(agg_logits, dim=1)  # over the cloud's keys
            bc_weights = torch.softmax(bc_logits, dim=1)  # over the agents
            out[rows, cols] = bc_weights @ (agg_weights @ vh)
        if mixer.dwc is not None:
            w, kernel = mixer.dwc.weight, mixer.dwc.weight.shape[1]
            conv = F.conv1d(v[rows].t()[None], w[:, None], mixer.dwc.bias, padding=kernel // 2, groups=c)
            out[rows] += conv[0].t()
    return mixer.proj(out)


@pytest.mark.parametrize(
    "args",
    [
        dict(num_agents=8),
        dict(num_agents=5, position_bias=False, dwc_kernel=0),
        dict(num_agents=3, dwc_kernel=5),
    ],
)
def test_agent_attention_matches_an_explicit_per_cloud_reference(args):
    torch.manual_seed(0)
    point = level([40, 1, 7, 100], seed=3)
    mixer = AgentAttention(channels=12, num_heads=3, **args).eval()
    with torch.no_grad():  # non-trivial biases, different per head, axis and direction
        for bias in (mixer.core.aggregation_bias, mixer.core.broadcast_bias):
            if bias is not None:
                bias.log_width.normal_(0.0, 0.7)
                bias.shift.normal_(0.0, 1.0)
    x = torch.randn(point.num_points, 12)
    with torch.no_grad():
        for order_index in (0, 2):
            out = mixer(x, point, order_index)
            torch.testing.assert_close(
                out, reference_agent_attention(mixer, x, point, order_index), atol=1e-5, rtol=1e-4
            )
    assert out.shape == (148, 12) and torch.isfinite(out).all()


def test_agent_attention_reaches_the_whole_cloud_through_the_agents():
    point = level([120, 60], seed=4)
    mixer = AgentAttention(channels=8, num_heads=2, num_agents=4, dwc_kernel=0)
    x = torch.randn(180, 8, requires_grad=True)
    out = mixer(x, point, 1)
    out[5].sum().backward()  # one row of cloud 0 depends on every row of cloud 0 and none of cloud 1
    reach = x.grad.abs().sum(1)
    assert bool((reach[:120] > 0).all()) and reach[120:].max() == 0


def test_agent_attention_packing_gradients_and_training():
    model = small_unet(AgentAttention, dict(num_agents=16))
    check_unet(model)


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (dict(num_heads=5), "num_heads"),
        (dict(num_heads=0), "num_heads"),
        (dict(num_agents=0), "num_agents"),
        (dict(dwc_kernel=4), "dwc_kernel"),
        (dict(dwc_kernel=-1), "dwc_kernel"),
        (dict(attn_drop=1.0), "attn_drop"),
        (dict(proj_drop=-0.1), "proj_drop"),
    ],
)
def test_agent_attention_rejects_bad_arguments(args, name):
    with pytest.raises(ValueError, match=name):
        AgentAttention(channels=16, **{"num_heads": 4, **args})


@pytest.mark.slow
@pytest.mark.samples
def test_agent_attention_overfits_a_real_crop(samples_dir):
    assert overfit_scene0000_crop(samples_dir, AgentAttention, {"num_agents": 32}) >= 0.9
