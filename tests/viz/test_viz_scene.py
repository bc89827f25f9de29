"""Scene building, colours and box geometry of the visualizer (no sample data, no rendering)."""

from __future__ import annotations

import numpy as np
import pytest

from pc3d.kernels.boxes import points_in_boxes
from pc3d.viz import colors as C
from pc3d.viz.camera import camera_preset, view_bounds
from pc3d.viz.geometry import box_corners, point_colors, scene_layers
from pc3d.viz.scene import Scene, expand_inputs, input_kind, load_npz, merge_predictions, scene_from_dict

NAMES = ("wall", "floor", "chair")


def _scene(**kw) -> Scene:
    rng = np.random.default_rng(0)
    base = dict(
        name="s",
        coord=rng.random((50, 3)).astype(np.float32),
        segment=rng.integers(-1, 3, 50),
        class_names=NAMES,
        boxes_gt=np.array([[0.5, 0.5, 0.5, 0.4, 0.4, 0.4, 0.0]], np.float32),
        labels_gt=np.array([2]),
        box_class_names=NAMES,
    )
    base.update(kw)
    return Scene(**base)


def test_box_corners_and_points_in_rotated_box():
    box = np.array([[1.0, 2.0, 0.5, 4.0, 2.0, 1.0, np.pi / 2]])
    c = box_corners(box)[0]
    # rotated by 90 degrees: the 4 m side lies along y
    np.testing.assert_allclose(c[:, 0].max() - c[:, 0].min(), 2.0, atol=1e-9)
    np.testing.assert_allclose(c[:, 1].max() - c[:, 1].min(), 4.0, atol=1e-9)
    np.testing.assert_allclose(c[:, 2].min(), 0.0, atol=1e-9)
    pts = np.array([[1.0, 3.9, 0.5], [2.9, 2.0, 0.5], [1.0, 2.0, 1.1], [1.8, 2.0, 0.2]])
    np.testing.assert_array_equal(points_in_boxes(pts, box), [0, -1, -1, 0])


def test_points_in_boxes_first_box_wins():
    boxes = np.array([[0, 0, 0, 2, 2, 2, 0], [0, 0, 0, 1, 1, 1, 0]], np.float64)
    np.testing.assert_array_equal(points_in_boxes(np.zeros((1, 3)), boxes), [0])


def test_palette_is_by_name_and_distinct():
    pal = C.palette(("chair", "Car", "something-new", "other-new"))
    assert tuple(pal[0]) == C.SCANNET_COLORS["chair"] and tuple(pal[1]) == C.KITTI_COLORS["Car"]
    assert len({tuple(p) for p in pal}) == 4
    # ScanNet 20 colours are pairwise distinct and far from the background and the box colours
    cols = np.array(
        [C.SCANNET_COLORS[n] for n in C.SCANNET_COLORS if n not in ("showercurtain", "garbagebin")]
    )
    d = (
        np.abs(cols[:, None].astype(int) - cols[None].astype(int)).max(-1)
        + np.eye(len(cols), dtype=int) * 999
    )
    assert d.min() >= 15
    for special in (C.BACKGROUND, C.GT_BOX_COLOR, C.PRED_BOX_COLOR):
        assert np.abs(cols.astype(int) - special).max(-1).min() >= 40


def test_label_and_error_colors():
    cols = C.label_colors(np.array([0, -1, 2]), NAMES)
    assert tuple(cols[0]) == C.SCANNET_COLORS["wall"] and tuple(cols[1]) == C.UNLABELLED_COLOR
    with pytest.raises(ValueError, match="label 3 has no class name"):
        C.label_colors(np.array([3]), NAMES)
    err = C.error_colors(np.array([1, 1, -1, -1]), np.array([1, 2, 0, -1]))
    assert [tuple(e) for e in err] == [C.CORRECT_COLOR, C.WRONG_COLOR, C.IGNORE_COLOR, C.IGNORE_COLOR]
    err = C.error_colors(np.array([-1, -1]), np.array([-1, 0]), ignore_unlabelled=False)
    assert [tuple(e) for e in err] == [C.CORRECT_COLOR, C.WRONG_COLOR]


def test_scene_validation_names_the_field():
    with pytest.raises(ValueError, match="segment has shape"):
        _scene(segment=np.zeros(49, np.int64))
    with pytest.raises(ValueError, match="coord has shape"):
        Scene(name="x", coord=np.zeros((5, 2)))
    with pytest.raises(ValueError, match="labels_gt holds"):
        _scene(labels_gt=np.array([5]))
    with pytest.raises(ValueError, match="must hold integers"):
        _scene(segment=np.zeros(50, np.float32))
    with pytest.raises(ValueError, match="kind must be"):
        _scene(kind="space")


def test_color_modes_and_their_errors():
    s = _scene()
    colors, legend = point_colors(s, "gt")
    assert colors.shape == (50, 3) and colors.dtype == np.uint8
    assert "unlabelled" in [n for n, _ in legend]
    with pytest.raises(ValueError, match="no predicted labels"):
        point_colors(s, "pred")
    with pytest.raises(ValueError, match="color_by must be one of"):
        point_colors(s, "rainbow")
    # no RGB: height ramp, low points darker-blue end than high points
    c, _ = point_colors(s, "rgb")
    assert c.shape == (50, 3)
    s2 = _scene(pred=s.segment.copy())
    c, legend = point_colors(s2, "error")
    assert {tuple(x) for x in c} <= {C.CORRECT_COLOR, C.IGNORE_COLOR}


def test_outdoor_points_labelled_by_boxes():
    coord = np.array([[0, 0, 0], [5, 0, 0], [10, 0, 0]], np.float32)
    s = Scene(
        name="o",
        coord=coord,
        boxes_gt=np.array([[0, 0, 0, 2, 2, 2, 0.3], [10, 0, 0, 2, 2, 2, 0]], np.float32),
        labels_gt=np.array([0, 1]),
        boxes_pred=np.array([[0, 0, 0, 2, 2, 2, 0]], np.float32),
        labels_pred=np.array([1]),
        scores_pred=np.array([0.7], np.float32),
        box_class_names=("Car", "Pedestrian"),
        kind="outdoor",
    )
    t = s.with_box_point_labels()
    np.testing.assert_array_equal(t.segment, [0, -1, 1])
    np.testing.assert_array_equal(t.pred, [1, -1, -1])
    c, _ = point_colors(s, "error")
    assert [tuple(x) for x in c] == [C.WRONG_COLOR, C.CORRECT_COLOR, C.WRONG_COLOR]
    layers = scene_layers(s, "error")
    names = [b.name for b in layers.boxes]
    assert names == ["gt_boxes", "pred_boxes"]
    pred = layers.boxes[1]
    assert pred.captions[0][1] == "Pedestrian 0.70"
    assert pred.lines.shape == (13, 2)  # 12 edges + heading line outdoors
    assert layers.boxes[0].lines.shape == (26, 2)
    assert scene_layers(s, "error", min_score=0.8).boxes[1].lines.shape[0] == 0
    assert [b.name for b in scene_layers(s, "gt").boxes] == ["gt_boxes"]
    assert [b.name for b in scene_layers(s, "pred").boxes] == ["pred_boxes"]
    assert scene_layers(s, "rgb", boxes="none").boxes == []


def test_npz_roundtrip_and_merge(tmp_path):
    s = _scene()
    f = tmp_path / "s1.npz"
    np.savez(
        f,
        coord=s.coord,
        segment=s.segment,
        pred=s.segment,
        class_names=np.array(NAMES),
        boxes_pred=s.boxes_gt,
        scores_pred=np.array([0.5], np.float32),
        labels_pred=np.array([1]),
    )
    t = load_npz(f)
    assert t.name == "s1" and t.kind == "indoor" and t.class_names == NAMES and t.box_class_names == NAMES
    assert t.has_pred and t.has_gt
    bad = tmp_path / "bad.npz"
    np.savez(bad, coord=s.coord, colour=s.coord)
    with pytest.raises(ValueError, match="unknown keys \\['colour'\\]"):
        load_npz(bad)
    with pytest.raises(ValueError, match="no 'coord'"):
        scene_from_dict({"segment": s.segment})
    m = merge_predictions(_scene(), {"pred": s.segment, "class_names": np.array(NAMES)})
    assert m.pred is not None
    with pytest.raises(ValueError, match="have 3 point labels but scene 's' has 50 points"):
        merge_predictions(_scene(), {"pred": np.zeros(3, np.int64), "class_names": np.array(NAMES)})


def test_axis_align_applied_and_outdoor_kind_detected():
    m = np.eye(4)
    m[:3, 3] = [10, 0, 0]
    s = scene_from_dict({"coord": np.zeros((2, 3), np.float32), "axis_align": m})
    np.testing.assert_allclose(s.coord[:, 0], 10)
    o = scene_from_dict(
        {
            "coord": np.zeros((2, 3), np.float32),
            "boxes_gt": np.array([[0, 0, 0, 1, 1, 1, 0.4]]),
            "labels_gt": np.array([0]),
            "class_names": np.array(["Car"]),
        }
    )
    assert o.kind == "outdoor"


def test_input_kinds(tmp_path):
    with pytest.raises(FileNotFoundError, match="input not found"):
        input_kind(tmp_path / "nope")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(ValueError, match="unsupported file type .txt"):
        input_kind(tmp_path / "x.txt")
    scene = tmp_path / "scans" / "scene0001_00"
    scene.mkdir(parents=True)
    np.save(scene / "coord.npy", np.zeros((3, 3), np.float32))
    assert input_kind(scene) == "scannet_preprocessed"
    assert input_kind(tmp_path) == "collection"
    assert expand_inputs([tmp_path]) == [scene]
    velo = tmp_path / "kitti" / "training" / "velodyne"
    velo.mkdir(parents=True)
    for i in (2, 1):
        np.zeros((3, 4), np.float32).tofile(velo / f"{i:06d}.bin")
    assert [p.name for p in expand_inputs([tmp_path / "kitti"])] == ["000001.bin", "000002.bin"]
    raw = tmp_path / "raw" / "scene0002_00"
    raw.mkdir(parents=True)
    (raw / "scene0002_00_vh_clean_2.ply").write_bytes(b"ply")
    assert input_kind(raw) == "scannet_raw" and expand_inputs([tmp_path / "raw"]) == [raw]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="not a scene directory"):
        input_kind(empty)


def test_camera_presets():
    s = Scene(name="c", coord=np.random.default_rng(1).random((100, 3)).astype(np.float32) * [4, 3, 2])
    lo, hi = view_bounds(s)
    assert (lo >= -1e-6).all() and (hi <= [4, 3, 2]).all() and (hi - lo > [3, 2, 1]).all()
    bev = camera_preset(s, "bev", 4 / 3)
    np.testing.assert_allclose(bev.eye[:2], bev.center[:2])  # straight down
    assert bev.eye[2] > hi[2] and bev.fov < 20
    for view in ("oblique", "driver"):
        spec = camera_preset(s, view, 4 / 3)
        assert spec.eye[2] > lo[2] and spec.near < np.linalg.norm(spec.eye - spec.center) < spec.far
    outdoor = Scene(name="o", coord=np.array([[-50, -60, -2], [80, 60, 1]], np.float32), kind="outdoor")
    lo, hi = view_bounds(outdoor)
    np.testing.assert_allclose(lo, [0, -40, -2]) and np.testing.assert_allclose(hi, [70.4, 40, 1])
    with pytest.raises(ValueError, match="view must be one of"):
        camera_preset(s, "top", 1.0)
