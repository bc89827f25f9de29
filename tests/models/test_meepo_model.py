"""MEEPO backbone: no cross-cloud leakage (batch invariance), order invariance, gradients, bad input."""

from __future__ import annotations

import pytest
import torch

from pc3d.models.meepo import MEEPO

SMALL = dict(
    in_channels=6,
    num_classes=5,
    grid_size=0.1,
    strides=(2, 2),
    enc_depths=(1, 2, 1),
    enc_channels=(16, 24, 32),
    dec_depths=(1, 1),
    dec_channels=(16, 24),
    drop_path=0.0,
    d_state=2,
    scan_stride=3,
)


def _cloud(n: int, seed: int, extent=(2.0, 1.6, 1.0)):
    g = torch.Generator().manual_seed(seed)
    coord = torch.rand(n, 3, generator=g) * torch.tensor(extent)
    return coord, torch.randn(n, 6, generator=g)


def _model(**kw) -> MEEPO:
    torch.manual_seed(0)
    m = MEEPO(**{**SMALL, **kw})
    # non-trivial BatchNorm statistics so that eval mode is not an identity
    m.train()
    with torch.no_grad():
        m(*_cloud(400, 9)[:2], torch.tensor([0, 400]))
    return m.eval()


def test_meepo_batch_invariance():
    m = _model()
    clouds = [_cloud(500, 1), _cloud(230, 2, (1.0, 1.0, 0.5)), _cloud(37, 3)]
    alone = [m(c, f, torch.tensor([0, c.shape[0]])) for c, f in clouds]
    packed = m(
        torch.cat([c for c, _ in clouds]),
        torch.cat([f for _, f in clouds]),
        torch.tensor([0, 500, 730, 767]),
    )
    torch.testing.assert_close(packed, torch.cat(alone), rtol=1e-4, atol=1e-4)
    # and the packed result does not depend on the packing order
    swapped = m(
        torch.cat([clouds[2][0], clouds[0][0]]),
        torch.cat([clouds[2][1], clouds[0][1]]),
        torch.tensor([0, 37, 537]),
    )
    torch.testing.assert_close(swapped[37:], alone[0], rtol=1e-4, atol=1e-4)


def test_meepo_information_flows_within_but_never_across_clouds():
    m = _model()
    (c1, f1), (c2, f2) = _cloud(300, 4), _cloud(200, 5)
    feat = torch.cat([f1, f2]).requires_grad_(True)
    out = m(torch.cat([c1, c2]), feat, torch.tensor([0, 300, 500]))
    out[:300].sum().backward()  # logits of cloud 0 only
    grad = feat.grad.abs().sum(1)
    assert grad[300:].max() == 0  # cloud 1 never influences cloud 0
    assert (grad[:300] > 0).float().mean() > 0.99  # context: every point of cloud 0 matters


def test_meepo_order_invariance():
    m = _model()
    coord, feat = _cloud(600, 6)
    ref = m(coord, feat, torch.tensor([0, 600]))
    perm = torch.randperm(600, generator=torch.Generator().manual_seed(0))
    out = m(coord[perm], feat[perm], torch.tensor([0, 600]))
    torch.testing.assert_close(out, ref[perm], rtol=1e-4, atol=1e-4)


def test_meepo_train_step_shapes_and_gradients():
    m = MEEPO(**SMALL, shuffle_orders=True).train()
    coord, feat = _cloud(300, 7)
    dup = torch.cat([coord, coord[:10]])  # points sharing a voxel share its logits
    out = m(dup, torch.cat([feat, feat[:10]]), torch.tensor([0, 310]))
    assert out.shape == (310, 5)
    torch.testing.assert_close(out[300:], out[:10])
    out.logsumexp(1).mean().backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


def test_meepo_rejects_bad_input():
    m = MEEPO(**SMALL).eval()
    coord, feat = _cloud(50, 8)
    with pytest.raises(ValueError, match="feat"):
        m(coord, feat[:, :3], torch.tensor([0, 50]))
    with pytest.raises(ValueError, match="offsets"):
        m(coord, feat, torch.tensor([0, 40]))
    with pytest.raises(ValueError, match="coord"):
        m(coord * 1e5, feat, torch.tensor([0, 50]))
    with pytest.raises(ValueError, match="enc_channels"):
        MEEPO(enc_depths=(1, 1), enc_channels=(8,), dec_depths=(1,), dec_channels=(8,), strides=(2,))
