"""ScanNetDataModule on the preprocessed real scene: batches, targets, determinism, workers."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch

from pc3d.data.batch import PointBatch, check_offsets
from pc3d.data.scannet import (
    SCANNET_DET_MEAN_SIZES,
    ScanNetDataModule,
    ScanNetDataset,
    SegCollate,
    data_mean_sizes,
    load_scene,
)
from pc3d.tools import data_scannet

SCENE = "scene0000_00"


@pytest.fixture(scope="module")
def root(samples_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("scannet_pre")
    parser = argparse.ArgumentParser()
    data_scannet.add_arguments(parser)
    sn = samples_dir / "scannet"
    args = parser.parse_args(["--raw", str(sn / "scans"), "--meta", str(sn / "meta"), "--out", str(out)])
    args.workers, args.no_progress = 1, True
    assert data_scannet.run(args) == 0
    return out


def _dm(root, **kw) -> ScanNetDataModule:
    base = dict(train_split="train", val_split=[SCENE], test_split=[SCENE], loop=2, batch_size=2)
    dm = ScanNetDataModule(str(root), **{**base, **kw})
    dm.setup()
    return dm


def _first(loader):
    return next(iter(loader))


@pytest.mark.samples
def test_seg_train_batch(root):
    dm = _dm(root, mix_prob=0.0)
    b = _first(dm.train_dataloader())
    assert isinstance(b, PointBatch) and b.num_clouds == 2
    check_offsets(b.offsets, b.coord.shape[0])
    assert b.feat.shape == (b.coord.shape[0], 6) and b.feat.dtype == torch.float32
    assert b.feat[:, :3].abs().max() <= 1.0  # normalised colour
    np.testing.assert_allclose(b.feat[:, 3:].norm(dim=1).numpy(), 1.0, atol=1e-4)  # rotated normals
    seg, gc = b.point["segment"], b.point["grid_coord"]
    assert seg.dtype == torch.int64 and seg.min() >= -1 and seg.max() < 20
    assert gc.dtype == torch.int32 and gc.shape == (b.coord.shape[0], 3) and gc.min() >= 0
    for g in b.split(gc):
        assert torch.unique(g, dim=0).shape[0] == g.shape[0]  # one point per voxel
    for c in b.split(b.coord):  # CenterShift(no z) at the end
        mid = (c.min(0).values + c.max(0).values) / 2
        assert mid[:2].abs().max() < 1e-4
    n0, n1 = b.counts()
    assert 50000 < n0 < 82000 and n0 != n1  # two different augmentations of the same scene


@pytest.mark.samples
def test_seg_train_mix3d_merges_pairs(root):
    b = _first(_dm(root, mix_prob=1.0).train_dataloader())
    assert b.num_clouds == 1 and len(b.meta) == 1 and b.meta[0]["mixed"] == [SCENE, SCENE]
    check_offsets(b.offsets, b.coord.shape[0])


@pytest.mark.parametrize("b", [2, 3, 4, 5])
def test_seg_collate_mixing_pairs(b):
    samples = [
        {"coord": np.zeros((n, 3), np.float32), "feat": np.zeros((n, 6), np.float32),
         "point": {"segment": np.full(n, i)}, "meta": {"scene_id": f"s{i}", "seed": 0, "epoch": 0, "index": i}}
        for i, n in enumerate([3, 5, 7, 11, 13][:b])
    ]  # fmt: skip
    batch = SegCollate(mix_prob=1.0)(samples)
    ends = np.cumsum([3, 5, 7, 11, 13][:b])
    expect = [0] + [int(ends[i]) for i in range(1, b, 2)] + ([int(ends[-1])] if b % 2 else [])
    assert batch.offsets.tolist() == expect and len(batch.meta) == len(expect) - 1
    check_offsets(batch.offsets, batch.coord.shape[0])
    assert SegCollate(mix_prob=0.0)(samples).num_clouds == b


@pytest.mark.samples
def test_seg_deterministic_and_epoch_dependent(root):
    a = _first(_dm(root, seed=3).train_dataloader())
    b = _first(_dm(root, seed=3).train_dataloader())
    assert torch.equal(a.coord, b.coord) and torch.equal(a.feat, b.feat) and torch.equal(a.offsets, b.offsets)
    loader = _dm(root, seed=3).train_dataloader()
    e0 = _first(loader)
    e1 = _first(loader)  # the sampler advances the epoch on each pass
    assert not torch.equal(e0.coord[:100], e1.coord[:100])
    loader.sampler.set_epoch(0)
    assert torch.equal(_first(loader).coord, e0.coord)


@pytest.mark.slow
@pytest.mark.samples
def test_seg_worker_safe(root):
    a = _first(_dm(root, seed=1, num_workers=0).train_dataloader())
    b = _first(_dm(root, seed=1, num_workers=1).train_dataloader())
    assert torch.equal(a.coord, b.coord) and torch.equal(a.point["segment"], b.point["segment"])


@pytest.mark.samples
def test_seg_val_whole_scene_inverse(root):
    dm = _dm(root)
    b = _first(dm.val_dataloader())
    raw = load_scene(root / "scans" / SCENE)
    m = b.meta[0]
    inv, origin = b.origin["inverse"], b.origin["segment"]
    assert m["num_points"] == 81369 and inv.shape == (81369,) and origin.shape == (81369,)
    assert b.origin_offsets.tolist() == [0, 81369]
    assert not any(isinstance(v, torch.Tensor) for v in m.values())  # meta holds no tensors
    assert int(inv.max()) == b.coord.shape[0] - 1 and int(inv.min()) == 0
    assert torch.equal(origin, torch.from_numpy(raw["segment20"].astype(np.int64)))
    # the kept point of each original point's voxel is within one voxel diagonal of it (same shift)
    shifted = torch.from_numpy(raw["coord"])
    shift = (b.coord[inv] - shifted).median(0).values
    assert ((b.coord[inv] - shifted - shift).norm(dim=1) <= 0.02 * 3**0.5 + 1e-4).all()
    assert (b.point["segment"][inv] == origin).float().mean() > 0.97
    b2 = _first(dm.val_dataloader())
    assert torch.equal(b.coord, b2.coord)  # validation is fixed across epochs


@pytest.mark.samples
def test_seg_test_fragments_vote_every_point(root):
    b = _first(_dm(root).test_dataloader())
    check_offsets(b.offsets, b.coord.shape[0])
    n = b.meta[0]["num_points"]
    assert n == 81369 and b.num_clouds == b.meta[0]["num_fragments"] > 1
    idx = b.point["index"]
    assert torch.equal(torch.unique(idx), torch.arange(n))
    logits = torch.randn(b.coord.shape[0], 20)
    probs = torch.zeros(n, 20).index_add_(0, idx, logits.softmax(-1))
    assert (probs.sum(1) >= 1 - 1e-4).all()
    raw = load_scene(root / "scans" / SCENE)
    assert torch.equal(b.point["segment"], torch.from_numpy(raw["segment20"].astype(np.int64))[idx])
    assert b.origin_offsets.tolist() == [0] + [n] * b.num_clouds  # the first fragment holds the scene
    assert torch.equal(b.origin["coord"], torch.from_numpy(raw["coord"]))
    assert torch.equal(b.origin["color"], torch.from_numpy(raw["color"]))
    assert torch.equal(b.origin["segment"], torch.from_numpy(raw["segment20"].astype(np.int64)))
    assert b.split_origin(b.origin["coord"])[1].shape == (0, 3)
    assert not any(isinstance(v, torch.Tensor) for m in b.meta for v in m.values())


@pytest.mark.samples
def test_det_batch_targets(root):
    dm = _dm(root, task="det", num_points=8000)
    b = _first(dm.train_dataloader())
    assert b.num_clouds == 2 and b.counts() == [8000, 8000] and b.feat.shape == (16000, 1)
    check_offsets(b.box_offsets, b.boxes.shape[0], "box_offsets")
    assert b.boxes.shape == (44, 7) and b.box_labels.shape == (44,) and (b.boxes[:, 6] == 0).all()
    assert b.box_labels.min() >= 0 and b.box_labels.max() < 18
    assert not b.box  # no per-box targets: the head derives them from boxes and box_labels
    assert b.cloud["axis_align"].shape == (2, 4, 4)
    # height feature: ~0 at the floor
    assert abs(float(torch.quantile(b.feat[:8000, 0], 0.01))) < 0.05
    # votes point at the centre of the instance's sampled points, which lies in the (augmented) box
    for c, vt, vm, boxes in zip(b.split(b.coord), b.split(b.point["vote_target"]), b.split(b.point["vote_mask"]),
                                b.split_boxes(b.boxes)):  # fmt: skip
        assert vm.float().mean() > 0.2
        centers = c[vm] + vt[vm]
        inside = ((centers[:, None, :3] - boxes[None, :, :3]).abs() <= boxes[None, :, 3:6] / 2 + 1e-4).all(-1)
        assert inside.any(1).all()
        lo, hi = c.min(0).values, c.max(0).values
        assert (boxes[:, :3] > lo - 0.1).all() and (boxes[:, :3] < hi + 0.1).all()


@pytest.mark.samples
def test_det_mean_sizes_from_data_and_eval(root):
    dm = _dm(root, task="det", num_points=4000)
    mean_sizes = data_mean_sizes(root, [SCENE])  # the head's mean_sizes for this data
    raw = load_scene(root / "scans" / SCENE)
    bed = raw["boxes"][raw["box_labels"] == 1, 3:6].mean(0)
    np.testing.assert_allclose(mean_sizes[1], bed, rtol=1e-5)
    np.testing.assert_allclose(mean_sizes[16], SCANNET_DET_MEAN_SIZES[16])  # no bathtub: fallback
    v1, v2 = _first(dm.val_dataloader()), _first(dm.val_dataloader())
    assert torch.equal(v1.coord, v2.coord) and v1.coord.shape == (4000, 3)


@pytest.mark.samples
def test_bad_arguments(root):
    with pytest.raises(ValueError, match="task"):
        ScanNetDataModule(str(root), task="cls")
    with pytest.raises(ValueError, match="not preprocessed"):
        ScanNetDataset(root, ["scene9999_00"])
    with pytest.raises(ValueError, match="split"):
        ScanNetDataset(root, "nosuchsplit")


@pytest.mark.samples
def test_seg_test_time_augmentation_views(root):
    ds = ScanNetDataset(root, [SCENE], task="seg", stage="test", test_views="pointcept13")
    frags = ds[0]
    views = sorted({f["meta"]["view"] for f in frags})
    assert views == list(range(13)) and frags[0]["meta"]["num_fragments"] == len(frags)
    n = frags[0]["meta"]["num_points"]
    raw = load_scene(root / "scans" / SCENE)
    for v in (0, 1, 5, 12):  # identity, 90 degrees, 90 degrees at scale 0.95, flip
        f = next(f for f in frags if f["meta"]["view"] == v)
        idx = f["point"]["index"]
        d_view = np.linalg.norm(f["coord"][1:50] - f["coord"][0], axis=1)
        d_raw = np.linalg.norm(raw["coord"][idx[1:50]] - raw["coord"][idx[0]], axis=1)
        np.testing.assert_allclose(d_view, d_raw * (0.95 if v == 5 else 1.0), rtol=1e-4, atol=1e-5)
    for v in range(13):
        idx = np.concatenate([f["point"]["index"] for f in frags if f["meta"]["view"] == v])
        assert np.array_equal(np.unique(idx), np.arange(n))  # every view covers every point
    with pytest.raises(ValueError, match="test_views"):
        ScanNetDataset(root, [SCENE], task="seg", stage="test", test_views="all")
