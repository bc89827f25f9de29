"""MEEPO backbone: no cross-cloud leakage (batch invariance), order invariance, gradients, bad input."""

from __future__ import annotations

import pytest
import torch
from mixer_checks import (
    check_batch_invariance,
    check_no_cross_cloud_gradient,
    check_order_invariance,
    check_pairs_built_once_per_level,
    cloud,
    logits,
    warmed_up,
)

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


def _model(**kw) -> MEEPO:
    torch.manual_seed(0)
    return warmed_up(MEEPO(**{**SMALL, **kw}))


def test_meepo_batch_invariance():
    check_batch_invariance(_model())


def test_meepo_information_flows_within_but_never_across_clouds():
    check_no_cross_cloud_gradient(_model())


def test_meepo_order_invariance():
    check_order_invariance(_model())


def test_meepo_train_step_shapes_and_gradients():
    m = MEEPO(**SMALL, shuffle_orders=True).train()
    coord, feat = cloud(300, 7)
    dup = torch.cat([coord, coord[:10]])  # points sharing a voxel share its logits
    out = logits(m, dup, torch.cat([feat, feat[:10]]), torch.tensor([0, 310]))
    assert out.shape == (310, 5)
    torch.testing.assert_close(out[300:], out[:10])
    out.logsumexp(1).mean().backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


def test_meepo_rejects_bad_input():
    m = MEEPO(**SMALL).eval()
    coord, feat = cloud(50, 8)
    with pytest.raises(ValueError, match="feat"):
        logits(m, coord, feat[:, :3], torch.tensor([0, 50]))
    with pytest.raises(ValueError, match="offsets"):
        logits(m, coord, feat, torch.tensor([0, 40]))
    with pytest.raises(ValueError, match="coord"):
        logits(m, coord * 1e5, feat, torch.tensor([0, 50]))
    with pytest.raises(ValueError, match="enc_channels"):
        MEEPO(enc_depths=(1, 1), enc_channels=(8,), dec_depths=(1,), dec_channels=(8,), strides=(2,))


def test_meepo_builds_neighbour_pairs_once_per_level():
    check_pairs_built_once_per_level(_model())
