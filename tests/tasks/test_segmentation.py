"""SegmentationModule: Lightning fit/validate/test/predict, fragment + view voting, optimiser groups, overfit."""

from __future__ import annotations

import math
import time

import lightning as L
import pytest
import torch
from scene_crops import overfit_crop, scene0000_crop
from torch.utils.data import DataLoader

from pc3d.data.batch import PointBatch
from pc3d.metrics.segmentation import SegmentationMetric
from pc3d.models.meepo import MEEPO
from pc3d.tasks.schedules import BudgetSchedule
from pc3d.tasks.seg_voting import view_transform
from pc3d.tasks.segmentation import SegmentationModule

TINY = dict(
    num_classes=3,
    grid_size=0.1,
    strides=(2,),
    enc_depths=(1, 1),
    enc_channels=(8, 16),
    dec_depths=(1,),
    dec_channels=(8,),
    drop_path=0.0,
)


def _scene(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    coord = torch.rand(n, 3, generator=g) * torch.tensor([2.0, 2.0, 1.0])
    feat = torch.randn(n, 6, generator=g)
    segment = (coord[:, 2] * 3).long().clamp(max=2)
    segment[:3] = -1
    return coord, feat, segment


def _batch(seeds, n=120) -> PointBatch:
    samples = []
    for s in seeds:
        coord, feat, seg = _scene(n, s)
        samples.append(
            {"coord": coord, "feat": feat, "point": {"segment": seg}, "meta": {"scene_id": f"s{s}"}}
        )
    return PointBatch.collate(samples)


def _fragments(n: int, seed: int) -> tuple[PointBatch, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two overlapping fragments of one scene: rows 0..n-1 split, with 10 shared points."""
    coord, feat, seg = _scene(n, seed)
    a = torch.arange(0, n // 2 + 10)
    b = torch.arange(n // 2, n)
    frags = [
        {
            "coord": coord[i],
            "feat": feat[i],
            "point": {"segment": seg[i], "index": i},
            "meta": {"scene_id": "sc", "fragment": k, "num_fragments": 2, "num_points": n},
        }
        for k, i in enumerate((a, b))
    ]
    return PointBatch.collate(frags), coord, feat, seg


def _task(**kw) -> SegmentationModule:
    torch.manual_seed(0)
    return SegmentationModule(MEEPO(**TINY), **kw)


def test_vote_sums_softmax_over_fragments_and_views():
    task = _task(tta_rotations=(0.0, 0.5), tta_scales=(1.0,), tta_flip=True, test_clouds_per_forward=2).eval()
    batch, coord, feat, seg = _fragments(90, 1)
    with torch.no_grad():
        (scene,) = task.vote(batch)
        expected = torch.zeros(90, 3)
        for idx in (torch.arange(0, 55), torch.arange(45, 90)):
            for rot, flip in ((0.0, False), (math.pi / 2, False), (0.0, True)):
                c = view_transform(coord[idx], rot, 1.0, flip)
                view = PointBatch(coord=c, feat=feat[idx], offsets=torch.tensor([0, len(idx)]))
                expected[idx] += task.model(view).softmax(-1)
    torch.testing.assert_close(scene["probs"], expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(scene["segment"], seg)
    preds = task.predict_step(batch, 0)
    assert len(preds) == 1 and preds[0]["pred"].shape == (90,) and preds[0]["meta"]["scene_id"] == "sc"
    assert torch.equal(preds[0]["pred"], expected.argmax(1))


def test_view_transform():
    c = torch.tensor([[1.0, 0.0, 0.5]])
    torch.testing.assert_close(view_transform(c, math.pi / 2, 2.0), torch.tensor([[0.0, 2.0, 1.0]]))
    torch.testing.assert_close(view_transform(c, 0.0, 1.0, True), torch.tensor([[-1.0, 0.0, 0.5]]))


def test_vote_rejects_fragments_that_miss_points():
    task = _task().eval()
    batch, *_ = _fragments(90, 1)
    batch.meta = [{**m, "num_points": 95} for m in batch.meta]
    with pytest.raises(ValueError, match="cover"):
        task.vote(batch)


def test_validation_scores_full_resolution_through_inverse():
    task = _task().eval()
    batch = _batch([3])
    n = batch.coord.shape[0]
    inverse = torch.cat([torch.arange(n), torch.arange(5)])  # 5 extra original points map to voxels 0..4
    origin = torch.cat([batch.point["segment"], batch.point["segment"][:5]])
    batch.origin = {"inverse": inverse, "segment": origin}
    batch.origin_offsets = torch.tensor([0, len(inverse)])
    task.log = lambda *a, **k: None  # no trainer attached
    with torch.no_grad():
        task.validation_step(batch, 0)
        pred = task(batch).argmax(1)
    expected = SegmentationMetric(3)
    expected.update(pred[inverse], origin)
    assert int(task.val_metric.confmat.sum()) == int((origin >= 0).sum())  # every original point scored
    assert torch.equal(task.val_metric.confmat, expected.confmat)


def test_optimizer_groups_and_onecycle(tmp_path):
    task = _task(optimizer=lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.05), block_lr_scale=0.1)
    trainer = L.Trainer(max_steps=4, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path, limit_val_batches=0)  # fmt: skip
    loader = DataLoader([_batch([1, 2]) for _ in range(4)], batch_size=None)
    trainer.fit(task, loader)
    opt = trainer.optimizers[0]
    assert len(opt.param_groups) == 2
    block_ids = {id(p) for n, p in task.model.named_parameters() if n.startswith(("enc.", "dec."))}
    assert {id(p) for p in opt.param_groups[1]["params"]} == block_ids
    sched = trainer.lr_scheduler_configs[0].scheduler
    assert isinstance(sched, BudgetSchedule) and sched.shape == "onecycle" and sched.total_steps == 4
    hp = task.scheduler  # the 4-step budget is used up: the schedule ended at its final learning rate
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01 / hp.div_factor / hp.final_div_factor)
    assert opt.param_groups[1]["initial_lr"] == pytest.approx(opt.param_groups[0]["initial_lr"] * 0.1)


def test_lightning_fit_validate_test_predict(tmp_path):
    task = _task(class_names=["low", "mid", "high"], print_class_table=True)
    trainer = L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path, num_sanity_val_steps=0)  # fmt: skip
    train = DataLoader([_batch([1, 2]), _batch([3, 4])], batch_size=None)
    val = DataLoader([_batch([5])], batch_size=None)
    trainer.fit(task, train, val)
    m = trainer.callback_metrics
    for key in ("train/loss", "val/loss", "val/mIoU", "val/mAcc", "val/allAcc"):
        assert key in m and math.isfinite(float(m[key])), key
    test = DataLoader([_fragments(80, 6)[0]], batch_size=None)
    trainer.test(task, test)
    assert 0.0 <= float(trainer.callback_metrics["test/mIoU"]) <= 1.0
    out = trainer.predict(task, test)
    assert out[0][0]["pred"].shape == (80,)


def test_rejects_bad_configuration():
    with pytest.raises(ValueError, match="schedule"):
        _task(scheduler="linear")
    with pytest.raises(ValueError, match="class_names"):
        _task(class_names=["a"])


@pytest.mark.slow
@pytest.mark.samples
def test_overfit_scene0000_crop(samples_dir):
    batch = scene0000_crop(samples_dir)
    target = batch.point["segment"]
    labelled = target >= 0
    assert len(torch.unique(target[labelled])) >= 5  # a non-trivial crop
    torch.manual_seed(0)
    model = MEEPO(grid_size=0.05, strides=(2, 2), enc_depths=(1, 1, 1), enc_channels=(16, 32, 48),
                  dec_depths=(1, 1), dec_channels=(32, 32), drop_path=0.0, num_classes=20)  # fmt: skip
    start = time.perf_counter()
    best = overfit_crop(model, batch, steps=60, lr=0.01)
    assert best >= 0.9, f"point accuracy {best:.3f} after 60 steps"
    assert time.perf_counter() - start < 120


def test_viz_samples_render_as_scenes():
    """The render callback's protocol: every sample is a valid pc3d.viz scene with labels and predictions."""
    from pc3d.viz.scene import scene_from_dict

    task = _task().eval()
    batch = _batch([0, 1])
    samples = task.viz_samples(batch, None)
    assert [s["name"] for s in samples] == ["s0", "s1"]
    for sample, coord in zip(samples, batch.split(batch.coord)):
        scene = scene_from_dict({k: (v.numpy() if hasattr(v, "numpy") else v) for k, v in sample.items()})
        assert scene.pred.shape == scene.segment.shape == (coord.shape[0],)


def test_vote_maps_each_cloud_to_its_original_points_through_the_global_inverse():
    """``origin["inverse"]`` holds batch rows: cloud 1's original points index past cloud 0's rows."""
    task = _task().eval()
    batch = _batch([3, 4])
    n0, n1 = batch.counts()
    inv0, inv1 = torch.cat([torch.arange(n0), torch.arange(4)]), torch.arange(n1).flip(0)
    coord = torch.rand(len(inv0) + len(inv1), 3)
    segment = torch.cat([batch.point["segment"][inv0], batch.point["segment"][n0:][inv1]])
    batch.origin = {"inverse": torch.cat([inv0, inv1 + n0]), "segment": segment, "coord": coord}
    batch.origin_offsets = torch.tensor([0, len(inv0), len(inv0) + len(inv1)])
    with torch.no_grad():
        scenes = task.vote(batch)
        probs = task(batch).softmax(-1)
        records = task.predict_step(batch, 0)
    torch.testing.assert_close(scenes[0]["probs"], probs[:n0][inv0])
    torch.testing.assert_close(scenes[1]["probs"], probs[n0:][inv1])
    assert torch.equal(scenes[1]["segment"], segment[len(inv0) :])
    assert torch.equal(records[1]["coord"], coord[len(inv0) :])
    assert torch.equal(records[1]["pred"], probs[n0:][inv1].argmax(1))


def test_model_without_the_interface_is_refused():
    with pytest.raises(ValueError, match="loss"):
        SegmentationModule(torch.nn.Linear(6, 3), num_classes=3)
