"""KITTI conversions, preprocessing, dataset and result writer on the two real frames."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pc3d.data.batch import PointBatch
from pc3d.data.kitti import (
    Calibration,
    KittiDataModule,
    anno_from_lists,
    anno_to_lidar_boxes,
    difficulty_level,
    fov_mask,
    lidar_to_camera_boxes,
    predictions_to_anno,
    preprocess,
    project_boxes_to_image,
    read_image_size,
    read_label,
    read_velodyne,
    write_kitti_result,
)
from pc3d.data.kitti.augment import points_in_boxes
from pc3d.data.kitti.labels import wrap_angle
from pc3d.metrics.kitti_eval import kitti_eval

FRAMES = ("000001", "000002")


@pytest.fixture(scope="module")
def kitti_root(samples_dir):
    return samples_dir / "kitti"


def _load(root, fid):
    tr = root / "training"
    calib = Calibration.from_file(tr / "calib" / f"{fid}.txt")
    return calib, read_label(tr / "label_2" / f"{fid}.txt"), read_velodyne(tr / "velodyne" / f"{fid}.bin")


@pytest.mark.parametrize("fid", FRAMES)
def test_box_roundtrip_camera_lidar_camera(kitti_root, fid):
    calib, anno, _ = _load(kitti_root, fid)
    keep = anno["name"] != "DontCare"
    boxes = anno_to_lidar_boxes(anno, calib)[keep]
    loc, dims, ry = lidar_to_camera_boxes(boxes, calib)
    assert np.abs(loc - anno["location"][keep]).max() < 1e-5
    assert np.abs(dims - anno["dimensions"][keep]).max() < 1e-5
    assert np.abs(wrap_angle(ry - anno["rotation_y"][keep])).max() < 1e-5
    # OpenPCDet convention: l, w, h sizes; heading = -(ry + pi/2); centre = bottom centre + h/2 up
    l, h, w = anno["dimensions"][keep].T
    np.testing.assert_allclose(boxes[:, 3:6], np.stack([l, w, h], 1))
    np.testing.assert_allclose(
        np.cos(boxes[:, 6]), np.cos(-(anno["rotation_y"][keep] + np.pi / 2)), atol=1e-9
    )
    bottom = calib.rect_to_lidar(anno["location"][keep])
    np.testing.assert_allclose(boxes[:, 2] - bottom[:, 2], h / 2, atol=1e-9)
    # lidar -> rect -> lidar of points is the identity
    pts = np.random.default_rng(0).normal(size=(50, 3)) * 20
    np.testing.assert_allclose(calib.rect_to_lidar(calib.lidar_to_rect(pts)), pts, atol=1e-9)


@pytest.mark.parametrize("fid", FRAMES)
def test_projected_corners_match_label_bbox(kitti_root, fid):
    calib, anno, _ = _load(kitti_root, fid)
    keep = anno["name"] != "DontCare"
    size = read_image_size(kitti_root / "training" / "image_2" / f"{fid}.png")
    assert size == (1242, 375)
    box = project_boxes_to_image(
        anno["location"][keep], anno["dimensions"][keep], anno["rotation_y"][keep], calib, size
    )
    # the label's 2D boxes are the annotated extents: within a few pixels of the 3D box projection
    assert np.abs(box - anno["bbox"][keep]).max() < 3.0


def test_difficulty_rules(kitti_root):
    # 000001: Truck occ 0 trunc 0 height 189.25-156.40=32.85 → moderate (25 < 32.85 ≤ 40) = 1;
    #         Car height 203.12-181.54=21.58 ≤ 25 → none (-1); Cyclist occluded 3 > 2 → -1; DontCare -1.
    # 000002: Misc height 327.94-167.34=160.6, occ 0, trunc 0 → easy 0; Car height 33.26 → moderate 1.
    _, a1, _ = _load(kitti_root, "000001")
    _, a2, _ = _load(kitti_root, "000002")
    assert difficulty_level(a1).tolist() == [1, -1, -1, -1, -1, -1, -1]
    assert difficulty_level(a2).tolist() == [0, 1]


@pytest.mark.parametrize("fid, lo, hi", [("000001", 3, 200), ("000002", 30, 500)])
def test_each_car_contains_plausible_point_count(kitti_root, fid, lo, hi):
    # 000001's car is 58 m away (few returns), 000002's car 34 m away: a 64-beam scan gives tens of points.
    calib, anno, pts = _load(kitti_root, fid)
    cars = anno["name"] == "Car"
    boxes = anno_to_lidar_boxes(anno, calib)[cars]
    idx = points_in_boxes(pts, boxes)
    for k in range(len(boxes)):
        n = int((idx == k).sum())
        assert lo <= n <= hi, (fid, k, n)
        # and the points inside are in the box's camera-facing half, i.e. the LiDAR sees its near side
        inside = pts[idx == k, :3]
        assert np.linalg.norm(inside[:, :2], axis=1).mean() < np.linalg.norm(boxes[k, :2]) + 0.5


def test_fov_reduction(kitti_root):
    calib, _, pts = _load(kitti_root, "000001")
    m = fov_mask(calib, pts[:, :3], (1242, 375))
    uv, depth = calib.lidar_to_img(pts[m, :3])
    assert (depth > 0).all() and (uv >= 0).all() and (uv[:, 0] < 1242).all() and (uv[:, 1] < 375).all()
    assert (pts[m, 0] > 0).all()  # in front of the car
    assert 0.08 < m.mean() < 0.3  # the 90° camera FOV keeps a small fraction of the 360° scan


@pytest.fixture(scope="module")
def preprocessed(kitti_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("kitti_pre")
    summary = preprocess(
        kitti_root, out, workers=0, progress=False, splits={"train": list(FRAMES), "val": ["000002"]}
    )
    assert summary["errors"] == {}
    return out


def test_preprocessed_infos_and_database(preprocessed, kitti_root):
    infos = json.loads((preprocessed / "infos" / "kitti_infos_train.json").read_text())
    assert infos["version"] == 1 and [f["frame_id"] for f in infos["frames"]] == list(FRAMES)
    f1 = infos["frames"][0]
    assert f1["image_size"] == [1242, 375] and f1["num_points_raw"] == 120268
    pts = np.load(preprocessed / f1["points_path"])
    assert pts.dtype == np.float32 and pts.shape == (f1["num_points"], 4)
    calib, anno, raw = _load(kitti_root, "000001")
    np.testing.assert_array_equal(pts, raw[fov_mask(calib, raw[:, :3], (1242, 375))])
    a = f1["annos"]
    assert a["name"][:3] == ["Truck", "Car", "Cyclist"] and a["difficulty"][:3] == [1, -1, -1]
    assert a["num_points_in_gt"][3:] == [-1] * 4  # DontCare
    db = json.loads((preprocessed / "gt_database" / "dbinfos_train.json").read_text())["classes"]
    cars = db["Car"]
    assert [c["frame_id"] for c in cars] == list(FRAMES)
    car_pts = np.load(preprocessed / "gt_database" / "Car.npy")
    assert car_pts.shape[0] == sum(c["count"] for c in cars)
    for c in cars:
        p = car_pts[c["offset"] : c["offset"] + c["count"]]
        l, w, h = c["box3d_lidar"][3:6]
        # box-centred: every point lies within the box's half-diagonal of the origin
        assert np.linalg.norm(p[:, :3], axis=1).max() <= np.sqrt(l * l + w * w + h * h) / 2 + 1e-4


def test_datamodule_batches(preprocessed):
    dm = KittiDataModule(
        str(preprocessed),
        batch_size=2,
        num_workers=0,
        num_points=4096,
        val_split="train",
        min_points={"Car": 1},
    )
    dm.setup("fit")
    # the DB has 2 cars, both outside the default difficulty filter? 000001's car is -1 (skipped),
    # 000002's is moderate → one candidate.
    assert dm.dataset("train").sampler.pool_size("Car") == 1
    torch.manual_seed(0)
    batch = next(iter(dm.train_dataloader()))
    assert isinstance(batch, PointBatch) and batch.offsets.tolist() == [0, 4096, 8192]
    assert batch.feat.shape == (8192, 1) and batch.point["box_index"].dtype == torch.int64
    # targets agree with the boxes of their own cloud
    for b in range(2):
        sl = slice(b * 4096, (b + 1) * 4096)
        boxes = batch.split_boxes(batch.boxes)[b].numpy()
        idx = points_in_boxes(batch.coord[sl].numpy(), boxes)
        first = int(batch.box_offsets[b])  # box_index is global: an index into batch.boxes
        np.testing.assert_array_equal(idx >= 0, batch.point["box_index"][sl].numpy() >= 0)
        inside = batch.point["box_index"][sl].numpy()
        assert ((inside < 0) | ((inside >= first) & (inside < first + len(boxes)))).all()
        rng = np.asarray(dm.dataset("train").point_range)
        assert ((batch.coord[sl].numpy() >= rng[:3]) & (batch.coord[sl].numpy() <= rng[3:])).all()
    assert batch.meta[0]["calib"]["P2"] and not batch.cloud  # calibration lives in meta only
    # validation is deterministic and unaugmented: the GT car of 000002 is unchanged
    v1 = next(iter(dm.val_dataloader()))
    v2 = next(iter(dm.val_dataloader()))
    torch.testing.assert_close(v1.coord, v2.coord)
    f2 = json.loads((preprocessed / "training" / "frames" / "000002.json").read_text())
    car = np.asarray(f2["annos"]["gt_boxes_lidar"][1], np.float32)
    np.testing.assert_allclose(v1.split_boxes(v1.boxes)[1].numpy()[0], car, atol=1e-5)
    # meta carries what evaluation and the result writer need
    gt = anno_from_lists(v1.meta[1]["annos"])
    assert gt["name"].tolist() == ["Misc", "Car"] and gt["bbox"].shape == (2, 4)
    pred = predictions_to_anno(
        v1.split_boxes(v1.boxes)[1],
        [0.9],
        v1.split_boxes(v1.box_labels)[1],
        dm.classes,
        v1.meta[1]["calib"],
        v1.meta[1]["image_size"],
    )
    np.testing.assert_allclose(pred["location"][0], gt["location"][1], atol=1e-4)
    r = kitti_eval([gt], [pred], ["Car"])["Car"]
    assert r["3d_R11"][1] == pytest.approx(100 / 11, abs=1e-3)  # 1 moderate GT, matched: index 0 only
    assert (
        v1.point["box_index"][4096:] >= 0
    ).sum() > 0  # 67 of ~20k FOV points are on the car; 4096 are kept


def test_result_writer_roundtrip_and_eval(preprocessed, kitti_root, tmp_path):
    # write the GT (as LiDAR predictions) through the writer, read it back and evaluate: 100 AP where defined
    pred_dir = tmp_path / "pred"
    gts, dts = [], []
    for fid in FRAMES:
        calib, anno, _ = _load(kitti_root, fid)
        keep = np.isin(anno["name"], ["Car", "Cyclist", "Truck", "Misc"])
        boxes = anno_to_lidar_boxes(anno, calib)[keep]
        names = sorted(set(anno["name"][keep]))
        labels = np.array([names.index(n) for n in anno["name"][keep]])
        path = write_kitti_result(
            pred_dir,
            fid,
            torch.from_numpy(boxes),
            np.linspace(0.9, 0.5, len(boxes)),
            labels,
            names,
            calib.to_dict(),
            (1242, 375),
        )
        res = read_label(path)
        np.testing.assert_allclose(res["location"], anno["location"][keep], atol=1e-3)
        np.testing.assert_allclose(res["rotation_y"], anno["rotation_y"][keep], atol=1e-3)
        np.testing.assert_allclose(res["bbox"], anno["bbox"][keep], atol=3.0)
        # alpha: observation angle, alpha = ry - atan2(x, z) of the camera-frame centre (KITTI definition)
        np.testing.assert_allclose(np.cos(res["alpha"]), np.cos(anno["alpha"][keep]), atol=0.03)
        gts.append(anno)
        dts.append(res)
    # the moderate car of 000002 is the only valid Car GT: detected → bbox/bev/3d moderate 100 (1 GT:
    # one threshold at index 0 → R11 = 1/11 precision point → 9.09, R40 = 0 (index 0 is skipped))
    r = kitti_eval(gts, dts, ["Car"])["Car"]
    assert r["3d_R11"][1] == pytest.approx(100 / 11, abs=1e-3) and r["3d_R40"][1] == 0.0
    assert r["3d_R11"][0] == 0.0  # no easy car
    empty = predictions_to_anno(np.zeros((0, 7)), [], [], ["Car"], calib, (1242, 375))
    assert len(empty["name"]) == 0
    with pytest.raises(ValueError, match="labels"):
        predictions_to_anno(np.zeros((1, 7)), [0.5], [3], ["Car"], calib, (1242, 375))


def test_eval_cli(kitti_root, tmp_path, capsys):
    from pc3d.tools.eval_cli import main

    gt = kitti_root / "training" / "label_2"
    split = tmp_path / "ids.txt"
    split.write_text("1\n2\n")
    pred = tmp_path / "pred"
    pred.mkdir()
    for fid in FRAMES:  # labels as perfect results (score column appended)
        lines = [
            ln + " 0.9"
            for ln in (gt / f"{fid}.txt").read_text().splitlines()
            if not ln.startswith("DontCare")
        ]
        (pred / f"{fid}.txt").write_text("\n".join(lines) + "\n")
    js = tmp_path / "r.json"
    assert (
        main(["kitti", "--gt", str(gt), "--pred", str(pred), "--split", str(split), "--json", str(js)]) == 0
    )
    out = capsys.readouterr().out
    assert "Car AP@0.70, 0.70, 0.70:" in out and "3d   AP:" in out and "Car AP_R40@" in out
    d = json.loads(js.read_text())
    assert set(d) == {"Car", "Pedestrian", "Cyclist"}
    assert set(d["Car"]) == {f"{m}_{r}" for m in ("bbox", "bev", "3d", "aos") for r in ("R11", "R40")}
    assert d["Car"]["3d_R11"][1] == pytest.approx(100 / 11, abs=1e-3)
    (pred / "000002.txt").unlink()
    assert (
        main(["kitti", "--gt", str(gt), "--pred", str(pred), "--split", str(split)]) == 1
    )  # a frame without its result file is a failed item
    assert "000002.txt" in capsys.readouterr().err
