"""The segmenter interface of the serialized U-Nets: ``forward(batch)`` computes exactly what the
coord/feat/offsets networks computed (same seeded weights, same RNG use), ``loss`` is the CE + Lovász
criterion, ``predict`` gives per-cloud records."""

from __future__ import annotations

from pathlib import Path

import pytest
import test_meepo_model
import test_ptv3
import torch
from mixer_checks import SMALL_UNET, cloud

from pc3d.data.batch import MissingField, PointBatch
from pc3d.models.losses import SegmentationLoss
from pc3d.models.meepo import MEEPO
from pc3d.models.mixer_unet import MixerUNet
from pc3d.models.ptv3 import PTv3

#: logits and losses written by the networks before they took batches (same inputs as :func:`_inputs`)
REFERENCE = Path(__file__).parent / "data" / "serialized_unet_reference.pt"


def _build(name: str, **kw):
    torch.manual_seed(0)
    if name == "meepo":
        return MEEPO(**test_meepo_model.SMALL, **kw)
    if name == "ptv3":
        return PTv3(**test_ptv3.SMALL, **kw)
    return MixerUNet("pc3d.models.mixers.agent.AgentAttention", {"num_agents": 16}, **SMALL_UNET, **kw)


def _inputs() -> tuple[PointBatch, torch.Tensor]:
    (c1, f1), (c2, f2) = cloud(300, 1), cloud(200, 2)
    segment = torch.randint(-1, 5, (500,), generator=torch.Generator().manual_seed(3))
    batch = PointBatch(
        torch.cat([c1, c2]), torch.cat([f1, f2]), torch.tensor([0, 300, 500]), {"segment": segment}
    )
    return batch, torch.floor(batch.coord / 0.1).long()


@pytest.mark.parametrize("name", ["meepo", "ptv3", "mixer"])
def test_forward_batch_and_loss_equal_the_reference(name):
    ref = torch.load(REFERENCE, weights_only=True)[name]
    criterion = SegmentationLoss(ce_weight=0.7, lovasz_weight=0.3, label_smoothing=0.1)
    model = _build(name, criterion=criterion)
    batch, grid = _inputs()
    model.train()
    torch.manual_seed(1)  # the training forward shuffles the orders
    train = model(batch)
    losses = model.loss(train, batch)
    with torch.no_grad():
        model.eval()
        ev = model(batch)
        batch.point["grid_coord"] = grid
        ev_grid = model(batch)
    for got, key in ((train, "train"), (ev, "eval"), (ev_grid, "eval_grid")):
        torch.testing.assert_close(got, ref[key], rtol=1e-5, atol=1e-5, msg=f"{name} {key}")
    assert set(losses) == {"loss", "ce", "lovasz"}
    for k, v in losses.items():
        torch.testing.assert_close(v, ref[f"loss_{k}"], rtol=1e-5, atol=1e-6)


def test_criterion_adds_no_state():
    model = _build("meepo")
    assert not any(k.startswith("criterion") for k in model.state_dict())
    assert not list(model.criterion.parameters()) and not list(model.criterion.buffers())
    assert model.ignore_index == -1


def test_predict_gives_one_record_per_cloud():
    model = _build("meepo").eval()
    batch, _ = _inputs()
    with torch.no_grad():
        out = model(batch)
    records = model.predict(out, batch)
    assert len(records) == 2
    for r, logits in zip(records, batch.split(out)):
        assert torch.equal(r["pred"], logits.argmax(1))
        torch.testing.assert_close(r["probs"], logits.softmax(-1))


def test_loss_without_labels_names_the_field():
    model = _build("meepo")
    batch, _ = _inputs()
    batch.point.clear()
    with pytest.raises(MissingField, match="segment"):
        model.loss(model(batch), batch)
