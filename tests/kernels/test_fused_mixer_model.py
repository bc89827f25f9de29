"""The fused mixer path of MEEPO equals its channel-major reference path on a real scene crop."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from pc3d.data.batch import PointBatch
from pc3d.models.meepo import MEEPO


def _model(backend: str, recompute: bool = True) -> MEEPO:
    torch.manual_seed(0)
    return MEEPO(strides=(2, 2), enc_depths=(1, 1, 1), enc_channels=(16, 32, 48), dec_depths=(1, 1),
                 dec_channels=(32, 32), drop_path=0.0, scan_backend=backend, mixer_recompute=recompute)  # fmt: skip


@pytest.mark.samples
def test_fused_mixer_equals_reference_on_scene0000_crop(samples_dir):
    """Logits and every parameter gradient agree to float32 tolerance, so training follows the same curve."""
    from pc3d.tools.bench.models_seg import load_scene

    coord, feat, seg = load_scene(samples_dir, crop=3000)
    batch = PointBatch(coord=coord, feat=feat, offsets=torch.tensor([0, coord.shape[0]]))
    results = {}
    for backend in ("auto", "numba"):
        model = _model(backend).train()
        torch.manual_seed(1)  # the same shuffled serialization orders
        logits = model(batch)
        F.cross_entropy(logits, seg, ignore_index=-1).backward()
        model.eval()
        with torch.no_grad():
            torch.manual_seed(1)
            infer = model(batch)
        results[backend] = (logits.detach(), infer, {n: p.grad for n, p in model.named_parameters()})
    (lf, if_, gf), (lr, ir, gr) = results["auto"], results["numba"]
    torch.testing.assert_close(lf, lr, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(if_, ir, rtol=1e-4, atol=1e-4)
    mixer_grads = [n for n in gf if ".mixer." in n]
    assert mixer_grads, "no mixer parameters found"
    scale = max(float(g.abs().max()) for g in gr.values())  # some gradients are ~0 (biases before a norm)
    for name in gf:
        torch.testing.assert_close(gf[name], gr[name], rtol=1e-3, atol=1e-5 * scale)
