"""DetectionModule: training/validation/prediction loop on tiny synthetic scenes, optimiser recipe."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from pc3d.data.batch import PointBatch
from pc3d.metrics import IndoorMAP
from pc3d.models.heads import VoteNetHead
from pc3d.models.pointformer import Pointformer
from pc3d.models.pointformer_votenet import PointformerVoteNet
from pc3d.tasks.detection import DetectionModule
from pc3d.tasks.schedules import MultiStep

MEANS = ((0.6, 0.6, 0.8), (1.2, 0.5, 0.5))


def scene(seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    labels = torch.tensor([0, 1])
    sizes = torch.tensor(MEANS)
    centers = torch.tensor([[0.8, 1.0, 0.4], [2.6, 1.2, 0.25]]) + 0.1 * torch.rand(2, 3, generator=g)
    boxes = torch.cat([centers, sizes, torch.zeros(2, 1)], 1)
    pts, vt = [], []
    for b in boxes:
        p = b[:3] + (torch.rand(100, 3, generator=g) - 0.5) * b[3:6]
        pts.append(p)
        vt.append(b[:3] - p)
    floor = torch.rand(100, 3, generator=g) * torch.tensor([4.0, 2.5, 0.02])
    coord = torch.cat([*pts, floor])
    return {
        "coord": coord,
        "feat": coord[:, 2:3],
        "point": {
            "vote_target": torch.cat([*vt, torch.zeros(100, 3)]),
            "vote_mask": torch.cat([torch.ones(200, dtype=torch.bool), torch.zeros(100, dtype=torch.bool)]),
        },
        "boxes": boxes,
        "box_labels": labels,
        "meta": {"scene_id": f"s{seed}"},
    }


def module(**kw) -> DetectionModule:
    bb = Pointformer(
        stem_channels=16,
        num_points=(96, 48, 24, 12),
        radii=(0.3, 0.5, 0.8, 1.2),
        num_samples=(8, 8, 8, 8),
        dims=(16, 32, 32, 32),
        out_channels=(32, 32, 32, 32),
        num_heads=2,
        num_local_layers=1,
        num_global_layers=1,
        global_dropout=0.0,
        fp_channels=((32, 32), (32, 32)),
    )
    head = VoteNetHead(
        num_classes=2,
        in_channels=32,
        mean_sizes=MEANS,
        vote_channels=(32,),
        num_proposals=16,
        agg_radius=0.4,
        agg_samples=8,
        agg_channels=(32, 32),
        proposal_channels=(32,),
    )
    kw.setdefault("class_names", ["box", "bar"])
    kw.setdefault("metric", IndoorMAP())
    return DetectionModule(PointformerVoteNet(bb, head=head), **kw)


@pytest.mark.slow
def test_fit_validate_predict():
    torch.manual_seed(0)
    data = [scene(i) for i in range(4)]
    loader = DataLoader(data, batch_size=2, collate_fn=PointBatch.collate)
    mod = module(
        optimizer=lambda p: torch.optim.AdamW(p, lr=3e-3, weight_decay=0.1), scheduler=MultiStep((100,))
    )
    trainer = L.Trainer(
        max_epochs=3,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(mod, loader, loader)
    m = trainer.callback_metrics
    for key in ("train/loss", "val/loss", "val/map_25", "val/map_50", "val/ap_25/box", "val/loss_vote"):
        assert key in m, sorted(m)
    assert 0.0 <= float(m["val/map_25"]) <= 1.0
    res = trainer.test(mod, loader, verbose=False)
    assert "test/map_25" in res[0]
    preds = trainer.predict(mod, loader)
    flat = [p for batch in preds for p in batch]
    assert len(flat) == 4 and flat[0]["meta"]["scene_id"] == "s0"
    assert (
        flat[0]["boxes_pred"].shape[1] == 7 and flat[0]["scores_pred"].shape == flat[0]["labels_pred"].shape
    )
    assert flat[0]["class_names"] == ["box", "bar"] and flat[0]["coord"].shape == (300, 3)
    torch.testing.assert_close(flat[0]["boxes_gt"], data[0]["boxes"])


def test_optimizer_recipe():
    mod = module()
    cfg = mod.configure_optimizers()
    opt, sched = cfg["optimizer"], cfg["lr_scheduler"]["scheduler"]
    assert isinstance(opt, torch.optim.AdamW)
    assert opt.defaults["lr"] == 2e-3 and opt.defaults["weight_decay"] == 0.1
    assert isinstance(sched, torch.optim.lr_scheduler.MultiStepLR)
    assert dict(sched.milestones) == {32: 1, 40: 1} and sched.gamma == 0.3
    sgd = module(optimizer=lambda p: torch.optim.SGD(p, lr=2e-3, momentum=0.9), scheduler=None)
    assert isinstance(sgd.configure_optimizers(), torch.optim.SGD)


def test_bad_arguments():
    with pytest.raises(ValueError, match="optimizer"):
        module(optimizer="lamb")
    with pytest.raises(ValueError, match="metric"):
        module(metric="coco")
    with pytest.raises(ValueError, match="class_names"):
        module(class_names=["a"])
    with pytest.raises(ValueError, match="model"):
        DetectionModule(torch.nn.Linear(2, 2))


def test_labels_outside_the_heads_classes_are_a_clear_error():
    """The head's mean_sizes come from the config; data with more classes stops the loss with one line."""
    mod = module()
    sample = scene(0)
    sample["box_labels"] = torch.tensor([0, 2])
    batch = PointBatch.collate([sample])
    with pytest.raises(ValueError, match=r"box_labels: class ids 0\.\.2 do not fit the head's 2 classes"):
        mod.model.loss(mod.model(batch), batch)


@pytest.mark.samples
def test_kitti_metric_on_real_frames(samples_dir):
    """Ground-truth boxes fed back as LiDAR predictions score exactly like the ground-truth annotations
    themselves (the camera-frame round trip is lossless); boxes shifted by 1 m lose the 3D matches."""
    import numpy as np

    from pc3d.data.kitti.calib import Calibration
    from pc3d.data.kitti.io import read_image_size
    from pc3d.data.kitti.labels import anno_to_lidar_boxes, read_label
    from pc3d.metrics import KittiMetric
    from pc3d.metrics.kitti_eval import kitti_eval

    names = ["Car", "Pedestrian", "Cyclist"]
    root = samples_dir / "kitti" / "training"
    acc, shifted = KittiMetric(), KittiMetric()
    acc.bind(names)
    shifted.bind(names)
    gts, ref = [], []
    for fid in ("000001", "000002"):
        anno = read_label(root / "label_2" / f"{fid}.txt", allow_score=False)
        calib = Calibration.from_file(root / "calib" / f"{fid}.txt")
        keep = [i for i, n in enumerate(anno["name"]) if n in names]
        boxes = torch.as_tensor(anno_to_lidar_boxes(anno, calib)[keep], dtype=torch.float32)
        labels = torch.tensor([names.index(anno["name"][i]) for i in keep])
        pred = {"boxes": boxes, "scores": torch.ones(len(keep)), "labels": labels}
        meta = {
            "annos": anno,
            "calib": calib.to_dict(),
            "image_size": read_image_size(root / "image_2" / f"{fid}.png"),
        }
        acc.add([pred], [meta])
        moved = boxes.clone()
        moved[:, 0] += 1.0
        shifted.add([dict(pred, boxes=moved)], [meta])
        gts.append(anno)
        ref.append(
            {k: (v[keep] if isinstance(v, np.ndarray) else v) for k, v in anno.items()}
            | {"score": np.ones(len(keep))}
        )
    res, expected = acc.evaluate(), kitti_eval(gts, ref, classes=names)
    for cls in names:
        for key in ("3d_R40", "3d_R11", "bev_R11", "bbox_R11"):
            np.testing.assert_allclose(res[cls][key], expected[cls][key], atol=1e-6, err_msg=f"{cls} {key}")
    assert res["Car"]["3d_R11"][1] > 0  # the moderate Car of frame 000002 is found
    assert shifted.evaluate()["Car"]["3d_R11"][1] == 0.0
    scores = acc.compute()  # the names the task logs under val/ and test/
    assert scores["Car/3d_R11_moderate"] == pytest.approx(res["Car"]["3d_R11"][1])
    assert "Car/3d_R40_moderate" in acc.progress_bar
    with pytest.raises(ValueError, match="annos"):
        acc.add([pred], [{"calib": meta["calib"], "image_size": meta["image_size"]}])


@pytest.mark.parametrize(
    "name",
    [
        "pointformer_votenet_scannet.yaml",
        "pointformer_pointrcnn_kitti.yaml",
        "pointformer_demo_scannet.yaml",
        "pointformer_demo_kitti.yaml",
    ],
)
def test_configs_build(name):
    """Every shipped detection config instantiates (class paths and argument names are valid)."""
    from pathlib import Path

    import yaml

    from pc3d.tools.bench.model_configs import task_from_configs

    cfg = yaml.safe_load((Path(__file__).resolve().parents[2] / "configs" / name).read_text())
    mod = task_from_configs(name)
    assert isinstance(mod, DetectionModule)
    assert cfg["data"]["class_path"] in (
        "pc3d.data.scannet.ScanNetDataModule",
        "pc3d.data.kitti.KittiDataModule",
    )
    assert len(mod.class_names) == mod.model.num_classes  # the datamodule's names (tests/test_class_names.py)


def test_viz_samples_render_as_scenes():
    from pc3d.viz.scene import scene_from_dict

    mod = module().eval()
    batch = PointBatch.collate([scene(0), scene(1)])
    samples = mod.viz_samples(batch, None)
    assert len(samples) == 2 and all("meta" not in s for s in samples)
    for sample in samples:
        sc = scene_from_dict({k: (v.numpy() if hasattr(v, "numpy") else v) for k, v in sample.items()})
        assert sc.boxes_gt.shape[1] == 7 and sc.boxes_pred.shape[1] == 7


def test_metric_objects_check_their_arguments_and_score_without_training_targets():
    with pytest.raises(ValueError, match="iou_thresholds"):
        IndoorMAP(iou_thresholds=[1.5])
    with pytest.raises(ValueError, match="class_names"):
        IndoorMAP().update([], PointBatch.collate([scene(0)]))
    with pytest.raises(ValueError, match="metric"):
        module(metric="indoor")
    mod = module().eval()
    batch = PointBatch.collate([scene(0), scene(1)])
    del batch.point["vote_target"]  # a labelled split without the VoteNet targets: metrics only
    logged = {}
    mod.log = lambda name, value, **kw: logged.__setitem__(name, value)
    with torch.no_grad():
        mod.validation_step(batch, 0)
    mod.on_validation_epoch_end()
    assert "val/map_25" in logged and not any(k.startswith("val/loss") for k in logged)
