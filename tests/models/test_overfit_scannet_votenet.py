"""Pointformer + VoteNet overfits the real ScanNet scene0000_00: mAP@0.25 >= 0.9 on its own boxes (issue #9)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pc3d.data.batch import PointBatch
from pc3d.metrics.detection_indoor import indoor_map
from pc3d.models.heads.votenet import VoteNetHead
from pc3d.models.pointformer import Pointformer
from pc3d.models.pointformer_votenet import PointformerVoteNet

SCENE = "scene0000_00"


@pytest.mark.slow
@pytest.mark.samples
def test_overfit_real_scannet_scene_map25(samples_dir, tmp_path, one_thread):
    """A small detector trained on one fixed 10k-point sample of the real scene recovers the scene's own
    22 boxes (13 classes): indoor mAP@0.25 >= 0.9 on the post-processed predictions (NMS, score threshold)."""
    from pc3d.data.scannet import DetAugParams, ScanNetDataset, convert_scene, data_mean_sizes, write_scene
    from pc3d.data.scannet.raw import read_label_tsv

    raw = samples_dir / "scannet"
    conv = convert_scene(
        raw / "scans" / SCENE, read_label_tsv(raw / "meta" / "scannetv2-labels.combined.tsv")
    )
    write_scene(tmp_path / "scans", SCENE, conv["arrays"], conv["meta"])
    gt_boxes = torch.from_numpy(conv["arrays"]["boxes"])
    gt_labels = torch.from_numpy(conv["arrays"]["box_labels"])
    assert len(gt_boxes) == 22 and len(set(gt_labels.tolist())) == 13
    # size clusters from the training data (the demo config's mean_sizes), here the scene itself
    means = data_mean_sizes(tmp_path, [SCENE])
    # stage "val": no augmentation, one fixed random subsample of the 81k vertices
    ds = ScanNetDataset(
        tmp_path,
        [SCENE],
        task="det",
        stage="val",
        det_aug=DetAugParams(num_points=10000),
    )
    batch = PointBatch.collate([ds[0]])
    torch.testing.assert_close(batch.boxes, gt_boxes)
    torch.testing.assert_close(batch.box_labels, gt_labels)

    torch.manual_seed(0)
    bb = Pointformer(
        stem_channels=32,
        num_points=(1024, 512, 256, 128),
        radii=(0.2, 0.4, 0.8, 1.2),
        num_samples=(16, 16, 16, 16),
        dims=(32, 64, 64, 64),
        out_channels=(64, 64, 64, 64),
        num_heads=4,
        num_local_layers=1,
        num_global_layers=1,
        global_dropout=0.0,
        fp_channels=((64, 64), (64, 64), (64, 64)),  # back to level 1: 1024 seeds
    )
    # post-processing as in the ScanNet recipe: min_points 5, class-aware NMS 0.25, per-class scores > 0.05
    head = VoteNetHead(
        num_classes=18,
        in_channels=64,
        mean_sizes=means,
        vote_channels=(64,),
        num_proposals=512,  # D-FPS on votes in training, on seeds at test (the head's defaults)
        agg_radius=0.3,
        agg_samples=16,
        agg_channels=(64, 64),
        proposal_channels=(64,),
    )
    det = PointformerVoteNet(bb, head=head, feat_channels=[0])  # height above the floor only
    steps = 400
    opt = torch.optim.AdamW(det.parameters(), lr=1.5e-3, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for _ in range(steps):
        terms = det.loss(det(batch), batch)
        opt.zero_grad()
        terms["loss"].backward()
        torch.nn.utils.clip_grad_norm_(det.parameters(), 10.0)  # the recipe's gradient clipping
        opt.step()
        sched.step()
    det.eval()
    with torch.no_grad():
        preds = det.predict(det(batch), batch)
    res = indoor_map(preds, [{"boxes": gt_boxes, "labels": gt_labels}], num_classes=18)
    ap25 = res["ap"][0]
    assert np.flatnonzero(~np.isnan(ap25)).tolist() == sorted(set(gt_labels.tolist()))
    print(f"mAP@0.25 {res['map'][0]:.4f}  mAP@0.5 {res['map'][1]:.4f}  ({len(preds[0]['boxes'])} detections)")
    assert res["map"][0] >= 0.9, {c: round(float(a), 3) for c, a in enumerate(ap25) if not np.isnan(a)}
