"""VoteNet head: targets with refined seeds, losses, overfitting, decoding and post-processing."""

from __future__ import annotations

import math

import pytest
import torch

from pc3d.data.batch import PointBatch
from pc3d.data.scannet.classes import SCANNET_DET_MEAN_SIZES as SCANNET_MEAN_SIZES
from pc3d.models.heads import VoteNetHead, class_mean_sizes
from pc3d.models.heads.common import angle_to_class, class_to_angle
from pc3d.models.pointformer import Pointformer
from pc3d.models.pointformer_votenet import PointformerVoteNet

MEANS = ((0.6, 0.6, 0.8), (1.2, 0.5, 0.5))


def synthetic_scene(seed: int, n_boxes: int = 3, n_points: int = 400) -> dict:
    """Axis-aligned boxes of two classes with points on their surfaces, plus floor points."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n_boxes) % 2
    sizes = torch.tensor(MEANS)[labels] * (1 + 0.1 * (torch.rand(n_boxes, 3, generator=g) - 0.5))
    centers = torch.stack([torch.tensor([0.8 + 1.5 * i, 1.0 + 0.5 * (i % 2), 0.0]) for i in range(n_boxes)])
    centers[:, 2] = sizes[:, 2] / 2
    boxes = torch.cat([centers, sizes, torch.zeros(n_boxes, 1)], 1)
    per = (n_points // 2) // n_boxes
    pts, vt, mask = [], [], []
    for b in boxes:
        u = torch.rand(per, 3, generator=g) - 0.5
        face = torch.randint(0, 3, (per,), generator=g)
        u[torch.arange(per), face] = torch.sign(u[torch.arange(per), face]) * 0.5
        p = b[:3] + u * b[3:6]
        pts.append(p)
        vt.append(b[:3] - p)
        mask.append(torch.ones(per, dtype=torch.bool))
    rest = n_points - per * n_boxes
    floor = torch.rand(rest, 3, generator=g) * torch.tensor([5.0, 2.5, 0.02])
    pts.append(floor)
    vt.append(torch.zeros(rest, 3))
    mask.append(torch.zeros(rest, dtype=torch.bool))
    coord = torch.cat(pts)
    return {
        "coord": coord,
        "feat": coord[:, 2:3] - coord[:, 2].min(),
        "point": {"vote_target": torch.cat(vt), "vote_mask": torch.cat(mask)},
        "boxes": boxes,
        "box_labels": labels,
    }


def tiny_detector(refine: bool = False) -> PointformerVoteNet:
    bb = Pointformer(
        stem_channels=16,
        num_points=(128, 64, 32, 16),
        radii=(0.3, 0.5, 0.8, 1.2),
        num_samples=(8, 8, 8, 8),
        dims=(16, 32, 32, 32),
        out_channels=(32, 32, 32, 32),
        num_heads=2,
        num_local_layers=1,
        num_global_layers=1,
        global_dropout=0.0,
        fp_channels=((32, 32), (32, 32)),
        refine=refine,
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
        min_points=0,
    )
    return PointformerVoteNet(bb, head=head)


def test_vote_targets_follow_refined_seeds():
    torch.manual_seed(0)
    scene = synthetic_scene(0)
    batch = PointBatch.collate([scene])
    det = tiny_detector(refine=True).eval()
    out = det(batch)
    moved = (out["seed_xyz"] - batch.coord[out["seed_indices"]]).norm(dim=1)
    assert moved.max() > 1e-3  # the seeds really are refined
    center, mask = det.head.vote_targets(
        out["seed_xyz"],
        out["seed_indices"],
        batch.coord,
        batch.point["vote_target"],
        batch.point["vote_mask"],
    )
    src = out["seed_indices"]
    # the target centre is the object's centre, whatever the seed position
    box_of = torch.cdist(center[mask], scene["boxes"][:, :3]).min(1).values
    assert mask.any() and box_of.max() < 1e-5
    torch.testing.assert_close(center, batch.coord[src] + batch.point["vote_target"][src])
    # votes landing exactly on the centres give zero vote loss although seeds moved
    out = dict(out, vote_xyz=center.clone())
    terms = det.head.loss(out, center, mask, batch.boxes, batch.box_labels, batch.box_offsets)
    assert terms["vote"].abs() < 1e-6
    out["vote_xyz"] = center + 0.1
    terms = det.head.loss(out, center, mask, batch.boxes, batch.box_labels, batch.box_offsets)
    torch.testing.assert_close(terms["vote"], torch.tensor(10 * 0.3), atol=1e-4, rtol=1e-4)


def test_losses_finite_and_decrease_on_overfit():
    torch.manual_seed(0)
    batch = PointBatch.collate([synthetic_scene(0), synthetic_scene(1, n_boxes=2)])
    det = tiny_detector(refine=True)
    opt = torch.optim.AdamW(det.parameters(), lr=5e-3)
    first = last = None
    for step in range(50):
        terms = det.loss(det(batch), batch)
        assert all(torch.isfinite(v) for v in terms.values()), terms
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
        if step == 0:
            first = terms
        last = terms
    assert last["loss"] < 0.5 * first["loss"]
    assert last["vote"] < first["vote"]
    det.eval()
    preds = det.predict(det(batch), batch)
    assert len(preds) == 2
    for p in preds:
        assert p["boxes"].shape[1] == 7 and p["scores"].shape == p["labels"].shape
        assert bool((p["scores"] > det.head.score_threshold).all())


def test_decode_sizes_and_angles():
    head = VoteNetHead(num_classes=2, in_channels=8, mean_sizes=MEANS, num_heading_bins=12, with_rot=True)
    P = 3
    out = {
        "center": torch.zeros(P, 3),
        "objectness": torch.tensor([[0.0, 10.0]] * P),
        "dir_class": torch.nn.functional.one_hot(torch.tensor([0, 3, 11]), 12).float(),
        "dir_res_norm": torch.zeros(P, 12),
        "size_class": torch.nn.functional.one_hot(torch.tensor([0, 1, 1]), 2).float(),
        "size_res_norm": torch.zeros(P, 2, 3),
        "sem": torch.zeros(P, 2),
    }
    out["size_res_norm"][2, 1] = torch.tensor([0.5, 0.0, -0.5])
    boxes, obj, sem = head.decode(out)
    torch.testing.assert_close(boxes[:2, 3:6], torch.tensor(MEANS)[[0, 1]])
    torch.testing.assert_close(boxes[2, 3:6], torch.tensor([1.8, 0.5, 0.25]))
    torch.testing.assert_close(boxes[:, 6], torch.tensor([0.0, math.pi / 2, -math.pi / 6]), atol=1e-6, rtol=0)
    assert bool((obj > 0.99).all())
    a = torch.linspace(-3.1, 3.1, 50)
    c, r = angle_to_class(a, 12)
    assert bool((r.abs() <= math.pi / 12 + 1e-6).all())
    torch.testing.assert_close(class_to_angle(c, r, 12), a, atol=1e-5, rtol=0)


def test_predict_post_processing():
    head = VoteNetHead(num_classes=2, in_channels=8, mean_sizes=MEANS, min_points=5, score_threshold=0.05)
    # three proposals: 0 and 1 overlap (same class, 1 has lower objectness), 2 is empty of points
    centers = torch.tensor([[0.0, 0.0, 0.4], [0.05, 0.0, 0.4], [5.0, 5.0, 0.4]])
    sem = torch.tensor([[5.0, 0.0], [5.0, 0.0], [0.0, 5.0]])
    out = {
        "center": centers,
        "objectness": torch.tensor([[0.0, 3.0], [0.0, 1.0], [0.0, 3.0]]),
        "dir_class": torch.zeros(3, 1),
        "dir_res_norm": torch.zeros(3, 1),
        "size_class": torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]),
        "size_res_norm": torch.zeros(3, 2, 3),
        "sem": sem,
        "proposal_offsets": torch.tensor([0, 3]),
    }
    coord = torch.rand(50, 3) * 0.4 + torch.tensor([-0.2, -0.2, 0.2])
    (res,) = head.predict(out, coord, torch.tensor([0, 50]))
    obj = torch.sigmoid(torch.tensor(3.0))
    p = torch.softmax(torch.tensor([5.0, 0.0]), 0)
    # one box survives NMS and the emptiness filter; it is emitted for each class scoring > 0.05
    expected = [(0, obj * p[0])] + ([(1, obj * p[1])] if obj * p[1] > 0.05 else [])
    assert len(res["boxes"]) == len(expected)
    for (lab, sc), got_l, got_s in zip(expected, res["labels"], res["scores"]):
        assert int(got_l) == lab
        torch.testing.assert_close(got_s, sc)
    torch.testing.assert_close(res["boxes"][0, :3], centers[0])


def test_head_arguments_validated():
    with pytest.raises(ValueError, match="mean_sizes"):
        VoteNetHead(num_classes=3, mean_sizes=MEANS)
    with pytest.raises(ValueError, match="sample_mode_train"):
        VoteNetHead(num_classes=2, mean_sizes=MEANS, sample_mode_train="random")
    with pytest.raises(ValueError, match="loss_weights"):
        VoteNetHead(num_classes=2, mean_sizes=MEANS, loss_weights={"votes": 1.0})
    assert len(SCANNET_MEAN_SIZES) == 18


def test_class_mean_sizes():
    boxes = torch.tensor(
        [[0, 0, 0, 1, 2, 3, 0], [0, 0, 0, 3, 2, 1, 0], [0, 0, 0, 1, 1, 1, 0]], dtype=torch.float32
    )
    torch.testing.assert_close(
        class_mean_sizes(boxes, torch.tensor([0, 0, 1]), 2), torch.tensor([[2.0, 2, 2], [1, 1, 1]])
    )
    with pytest.raises(ValueError, match="no box"):
        class_mean_sizes(boxes, torch.tensor([0, 0, 0]), 2)


@pytest.mark.samples
def test_real_scene_vote_targets_and_loss(samples_dir, tmp_path):
    """On the real scene0000_00 (pc3d-data format, det pipeline) the vote targets of refined seeds point at
    ground-truth box centres and one training step gives finite losses."""
    from pc3d.data.scannet.dataset import ScanNetDataset
    from pc3d.data.scannet.pipelines import DetAugParams
    from pc3d.data.scannet.preprocess import convert_scene, write_scene
    from pc3d.data.scannet.raw import read_label_tsv

    raw = samples_dir / "scannet"
    conv = convert_scene(
        raw / "scans" / "scene0000_00", read_label_tsv(raw / "meta" / "scannetv2-labels.combined.tsv")
    )
    write_scene(tmp_path / "scans", "scene0000_00", conv["arrays"], conv["meta"])
    ds = ScanNetDataset(
        tmp_path, ["scene0000_00"], task="det", stage="val", det_aug=DetAugParams(num_points=4096)
    )
    batch = PointBatch.collate([ds[0]])
    assert batch.boxes is not None and len(batch.boxes) > 5
    torch.manual_seed(0)
    bb = Pointformer(
        stem_channels=16,
        num_points=(512, 256, 128, 64),
        radii=(0.2, 0.4, 0.8, 1.2),
        num_samples=(16, 16, 16, 16),
        dims=(16, 32, 32, 32),
        out_channels=(32, 32, 32, 32),
        num_heads=2,
        num_local_layers=1,
        num_global_layers=1,
        global_dropout=0.0,
        fp_channels=((32, 32), (32, 32)),
        refine=True,
    )
    head = VoteNetHead(num_classes=18, in_channels=32, mean_sizes=SCANNET_MEAN_SIZES, vote_channels=(32,),
                       num_proposals=64, agg_channels=(32, 32), proposal_channels=(32,))  # fmt: skip
    det = PointformerVoteNet(bb, head=head, feat_channels=[0])
    out = det(batch)
    center, mask = det.head.vote_targets(
        out["seed_xyz"],
        out["seed_indices"],
        batch.coord,
        batch.point["vote_target"],
        batch.point["vote_mask"],
    )
    assert mask.sum() > 10
    assert (out["seed_xyz"] - batch.coord[out["seed_indices"]]).norm(dim=1).max() > 1e-3
    d = torch.cdist(center[mask], batch.boxes[:, :3]).min(1).values
    # every voting seed targets its object's centre; the data's vote targets use the extent of the *sampled*
    # instance points (mmdet3d), so they sit a few cm from the full-scene box centre
    assert d.max() < 0.2
    terms = det.loss(out, batch)
    assert all(torch.isfinite(v) for v in terms.values())
    terms["loss"].backward()
