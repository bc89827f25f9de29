"""GT-sampling, global augmentation, point sampling and point targets (synthetic, no sample data)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from pc3d.data.kitti import augment as aug
from pc3d.data.kitti.targets import point_targets


def _write_db(root, entries_by_class, rng):
    """Hand-made GT database: per entry (box, count, difficulty); points uniform inside the box."""
    db = root / "gt_database"
    db.mkdir(parents=True)
    classes = {}
    for cls, entries in entries_by_class.items():
        chunks, infos, off = [], [], 0
        for box, cnt, diff in entries:
            p = rng.uniform(-0.45, 0.45, (cnt, 3)) * np.asarray(box[3:6])  # box-centred, yaw 0
            chunks.append(np.concatenate([p, rng.uniform(0, 1, (cnt, 1))], 1).astype(np.float32))
            infos.append({"box3d_lidar": list(box), "count": cnt, "difficulty": diff, "offset": off})
            off += cnt
        np.save(db / f"{cls}.npy", np.concatenate(chunks))
        classes[cls] = infos
    (db / "dbinfos_train.json").write_text(json.dumps({"version": 1, "classes": classes}))


def test_gt_sampler_counts_filters_and_collisions(tmp_path):
    rng = np.random.default_rng(0)
    car = lambda x: [x, 0.0, -1.0, 4.0, 1.8, 1.5, 0.0]  # noqa: E731
    _write_db(
        tmp_path,
        {
            "Car": [(car(10), 50, 0), (car(20), 50, 1), (car(30), 50, 2), (car(40), 3, 0), (car(50), 50, -1)],
            "Pedestrian": [([5, 5, -1, 0.8, 0.6, 1.7, 0], 20, 0), ([5, 5.3, -1, 0.8, 0.6, 1.7, 0], 20, 0)],
        },
        rng,
    )
    s = aug.GTSampler(
        tmp_path, ["Car", "Pedestrian"], {"Car": 4, "Pedestrian": 5}, {"Car": 5, "Pedestrian": 5}
    )
    # x=40 has 3 < 5 points, x=50 has difficulty -1: pools are 3 cars and 2 pedestrians
    assert s.pool_size("Car") == 3 and s.pool_size("Pedestrian") == 2
    scene = np.concatenate([rng.uniform([0, -10, -2, 0], [60, 10, 1, 1], (5000, 4))]).astype(np.float32)
    boxes = np.array([car(20.5)])  # an existing car overlapping the DB car at x=20
    names = np.array(["Car"])
    pts, b2, n2 = s(scene, boxes, names, np.random.default_rng(1))
    # Car: wants 4 - 1 = 3, draws all 3; x=20 collides with the existing box → x=10 and x=30 added.
    # Pedestrian: wants 5, draws both; they overlap each other (0.3 m apart) → both rejected.
    assert n2.tolist() == ["Car", "Car", "Car"]
    assert sorted(b2[1:, 0].tolist()) == [10.0, 30.0]
    np.testing.assert_array_equal(b2[0], boxes[0])
    idx = aug.points_in_boxes(pts, b2[1:])
    # each pasted box holds exactly its 50 DB points; scene points inside were removed
    assert np.bincount(idx[idx >= 0], minlength=2).tolist() == [50, 50]
    removed = (aug.points_in_boxes(scene, b2[1:]) >= 0).sum()
    assert len(pts) == len(scene) - removed + 100
    # enough objects of a class already present: nothing added
    p3, b3, n3 = s(
        scene, np.array([car(20), car(10), car(30), car(40)]), np.array(["Car"] * 4), np.random.default_rng(2)
    )
    assert len(b3) == 4 and (n3 == "Car").all()


def test_gt_sampler_missing_db(tmp_path):
    with pytest.raises(ValueError, match="dbinfos_train.json: GT database missing"):
        aug.GTSampler(tmp_path)


def test_global_transforms_keep_points_in_their_boxes():
    rng = np.random.default_rng(0)
    boxes = np.array([[10, 3, -1, 4, 1.8, 1.5, 0.4], [20, -5, -0.5, 0.8, 0.6, 1.7, -1.2]])
    pts = np.concatenate(
        [
            rng.uniform(-30, 30, (3000, 4)),
        ]
    )
    pts[:, 2] = rng.uniform(-2, 1, 3000)
    pts = pts.astype(np.float32)
    before = aug.points_in_boxes(pts, boxes)
    assert (before >= 0).sum() > 0
    for p, b in (
        aug.global_rotation(pts, boxes, 0.7),
        aug.global_scaling(pts, boxes, 1.05),
        aug.random_flip_x(pts, boxes, rng, p=1.0),
    ):
        assert not np.array_equal(p, pts)
        np.testing.assert_array_equal(aug.points_in_boxes(p, b), before)
    p, b = aug.global_rotation(pts, boxes, np.pi / 2)
    np.testing.assert_allclose(b[0, :2], [-3, 10], atol=1e-9)
    assert -np.pi <= b[0, 6] < np.pi


def test_sample_points_fixed_count():
    rng = np.random.default_rng(0)
    pts = np.zeros((1000, 4), np.float32)
    pts[:, 0] = np.linspace(1, 60, 1000)
    idx = aug.sample_points(pts, 600, rng)
    assert len(idx) == 600 and len(np.unique(idx)) == 600
    far = np.flatnonzero(pts[:, 0] >= 40)
    assert np.isin(far, idx).all()  # all far points kept, the near ones subsampled
    idx = aug.sample_points(pts, 2500, rng)  # fewer points than wanted: all kept, extras repeat
    assert len(idx) == 2500 and np.isin(np.arange(1000), idx).all()
    assert len(aug.sample_points(pts, 0, rng)) == 1000


def test_range_masks_and_point_targets():
    pts = np.array([[1, 0, 0, 0], [80, 0, 0, 0], [5, 0, -0.5, 0], [5, 50, 0, 0]], np.float32)
    boxes = np.array([[5, 0, -0.5, 2, 2, 2, 0], [75, 0, 0, 2, 2, 2, 0]])
    pm, bm = aug.range_masks(pts, boxes, (0, -40, -3, 70.4, 40, 1))
    assert pm.tolist() == [True, False, True, False] and bm.tolist() == [True, False]
    bi = point_targets(pts, boxes)
    assert (bi >= 0).tolist() == [False, False, True, False] and bi.tolist() == [-1, -1, 0, -1]


def test_gt_sampler_keeps_full_names_of_pasted_classes(tmp_path):
    # A frame with only 'Car'/'Van' names (dtype <U3) must not truncate a pasted 'Pedestrian' to 'Ped'.
    rng = np.random.default_rng(0)
    _write_db(tmp_path, {"Pedestrian": [([5, 5, -1, 0.8, 0.6, 1.7, 0], 20, 0)]}, rng)
    s = aug.GTSampler(tmp_path, ["Pedestrian"], {"Pedestrian": 1}, {"Pedestrian": 5})
    scene = rng.uniform([0, -10, -2, 0], [60, 10, 1, 1], (500, 4)).astype(np.float32)
    boxes = np.array([[20.0, 0, -1, 4, 1.8, 1.5, 0], [30.0, 0, -1, 4, 1.8, 1.5, 0]])
    names = np.array(["Car", "Van"])
    assert names.dtype == np.dtype("<U3")
    _, b2, n2 = s(scene, boxes, names, np.random.default_rng(1))
    assert n2.tolist() == ["Car", "Van", "Pedestrian"]
    assert len(b2) == 3


def test_gt_sampler_on_label_less_frame(tmp_path):
    # A frame whose label file is empty: load_frame gives a string (not float64) name array, and
    # GT-sampling pastes into it.
    from pc3d.data.kitti.preprocess import load_frame

    rng = np.random.default_rng(0)
    _write_db(tmp_path, {"Car": [([10, 0, -1, 4, 1.8, 1.5, 0], 30, 0)]}, rng)
    scene = rng.uniform([0, -10, -2, 0], [60, 10, 1, 1], (500, 4)).astype(np.float32)
    np.save(tmp_path / "pts.npy", scene)
    info = {
        "points_path": "pts.npy",
        "annos": {"name": [], "gt_boxes_lidar": [], "difficulty": [], "num_points_in_gt": []},
    }
    d = load_frame(tmp_path, info)
    assert d["gt_names"].dtype.kind == "U" and d["gt_names"].shape == (0,)
    assert d["gt_boxes"].shape == (0, 7)
    s = aug.GTSampler(tmp_path, ["Car"], {"Car": 1}, {"Car": 5})
    pts, b2, n2 = s(d["points"], d["gt_boxes"], d["gt_names"], np.random.default_rng(1))
    assert n2.tolist() == ["Car"]
    np.testing.assert_allclose(b2, [[10, 0, -1, 4, 1.8, 1.5, 0]])
    # a plain empty list (float64 when made into an array) is accepted too
    _, _, n3 = s(scene, np.zeros((0, 7)), np.asarray([]), np.random.default_rng(1))
    assert n3.tolist() == ["Car"]
