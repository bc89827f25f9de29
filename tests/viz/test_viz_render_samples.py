"""Headless renders of the real samples: ScanNet scene0000_00 and KITTI frame 000001."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from viz_checks import assert_not_blank, color_pixels, foreground_fraction

from pc3d.viz import colors as C
from pc3d.viz.camera import project
from pc3d.viz.geometry import box_corners
from pc3d.viz.render import Renderer, render_png
from pc3d.viz.scene import Scene, load_scene

pytestmark = pytest.mark.samples

W, H = 480, 360


@pytest.fixture(scope="module")
def renderer():
    r = Renderer(W, H)
    yield r
    r.close()


@pytest.fixture(scope="module")
def scannet(samples_dir: Path) -> Scene:
    return load_scene(samples_dir / "scannet" / "scans" / "scene0000_00")


@pytest.fixture(scope="module")
def kitti(samples_dir: Path) -> Scene:
    return load_scene(samples_dir / "kitti" / "training" / "velodyne" / "000001.bin")


def _with_predictions(scene: Scene, seed: int = 0) -> Scene:
    """GT-derived predictions: 15 % of point labels flipped, boxes moved 0.3 m, random scores."""
    rng = np.random.default_rng(seed)
    pred = None
    if scene.segment is not None:
        pred = scene.segment.copy()
        flip = rng.random(pred.shape[0]) < 0.15
        pred[flip] = rng.integers(0, len(scene.class_names), int(flip.sum()))
    boxes = scene.boxes_gt.copy()
    boxes[:, 0] += 0.3
    scores = rng.random(boxes.shape[0]).astype(np.float32)
    return dataclasses.replace(
        scene, pred=pred, boxes_pred=boxes, scores_pred=scores, labels_pred=scene.labels_gt
    )


def test_scannet_scene_loads_with_labels_and_boxes(scannet):
    assert scannet.coord.shape == (81369, 3) and scannet.color.shape == (81369, 3)
    assert scannet.segment is not None and (scannet.segment >= 0).mean() > 0.5
    assert scannet.boxes_gt.shape[0] >= 10
    # boxes are in the aligned frame, like the points: every box contains points of the scene
    from pc3d.kernels.boxes import points_in_boxes

    for j, box in enumerate(scannet.boxes_gt):
        assert (points_in_boxes(scannet.coord, box[None]) == 0).sum() > 20, f"box {j} holds no points"


@pytest.mark.parametrize("view", ["bev", "oblique"])
def test_scannet_render_gt_labels_and_boxes(renderer, scannet, view):
    frame = renderer.render(scannet, view, "gt")
    img = frame.image
    assert img.shape == (H, W, 3) and img.dtype == np.uint8
    assert_not_blank(img, 0.12)
    # label colours: the classes covering the most points are all visible in their palette colour
    counts = np.bincount(scannet.segment[scannet.segment >= 0], minlength=len(scannet.class_names))
    pal = C.palette(scannet.class_names)
    top = np.argsort(-counts)[:5]
    for c in top:
        n = color_pixels(img, pal[c], tol=4)
        assert n > 50, (
            f"class {scannet.class_names[c]} ({counts[c]} points) has only {n} pixels of its colour"
        )
    # box lines: the GT box colour (not used by any class) is drawn
    assert color_pixels(img, C.GT_BOX_COLOR, tol=10) > 300
    # ... and disappears when boxes are off, so the count above measures the boxes
    no_boxes = renderer.render(scannet, view, "gt", boxes="none").image
    assert color_pixels(no_boxes, C.GT_BOX_COLOR, tol=10) < 20


def test_scannet_rgb_is_not_the_label_palette(renderer, scannet):
    """The label-colour check can fail: RGB colouring does not paint the floor in its palette colour."""
    img = renderer.render(scannet, "bev", "rgb", boxes="none").image
    assert_not_blank(img, 0.12)
    floor = C.palette(scannet.class_names)[scannet.class_names.index("floor")]
    assert color_pixels(img, floor, tol=4) < 0.01 * color_pixels(
        renderer.render(scannet, "bev", "gt").image, floor, 4
    )


def test_scannet_driver_view_not_blank(renderer, scannet):
    assert_not_blank(renderer.render(scannet, "driver", "gt").image, 0.10)


def test_kitti_render_box_labels_and_boxes(renderer, kitti):
    assert kitti.kind == "outdoor"
    assert [kitti.box_class_names[i] for i in kitti.labels_gt] == ["Truck", "Car", "Cyclist"]
    # points inside the GT boxes take their class colour (few points at 45-70 m: big points, no box lines on top)
    labels_only = renderer.render(kitti, "bev", "gt", boxes="none", point_size=4).image
    assert_not_blank(labels_only, 0.03)
    for name in ("Car", "Cyclist", "Truck"):
        n = color_pixels(labels_only, C.KITTI_COLORS[name], tol=4)
        assert n >= 15, f"{name}: {n} pixels of its colour"
    assert color_pixels(labels_only, C.GT_BOX_COLOR, tol=10) == 0
    frame = renderer.render(kitti, "bev", "gt")
    img = frame.image
    assert_not_blank(img, 0.03)
    assert color_pixels(img, C.GT_BOX_COLOR, tol=10) > 100
    # every box's projected footprint holds GT box-colour pixels (lines are where the boxes are)
    mask = np.abs(img.astype(int) - C.GT_BOX_COLOR).max(-1) <= 10
    for j, corners in enumerate(box_corners(kitti.boxes_gt)):
        px, ok = project(frame.view_proj, corners, W, H)
        assert ok.any(), f"box {j} is outside the image"
        x0, y0 = np.floor(px[ok].min(0)).astype(int) - 2
        x1, y1 = np.ceil(px[ok].max(0)).astype(int) + 2
        assert mask[max(y0, 0) : y1 + 1, max(x0, 0) : x1 + 1].sum() > 5, f"no box lines around box {j}"


def test_kitti_oblique_and_driver(renderer, kitti):
    for view in ("oblique", "driver"):
        img = renderer.render(kitti, view, "gt").image
        assert_not_blank(img, 0.05)
        assert color_pixels(img, C.GT_BOX_COLOR, tol=10) > 30, view


def test_empty_scene_is_blank(renderer):
    """The 'not blank' check fails on a render with nothing in it."""
    empty = Scene(name="empty", coord=np.zeros((0, 3), np.float32))
    img = renderer.render(empty, "oblique", "rgb").image
    assert foreground_fraction(img) == 0.0
    with pytest.raises(AssertionError, match="blank"):
        assert_not_blank(img, 0.001)


@pytest.mark.parametrize("which", ["scannet", "kitti"])
def test_side_by_side_png(tmp_path, which, request):
    from PIL import Image

    scene = _with_predictions(request.getfixturevalue(which))
    # no annotations: the legend swatches and captions would hold the box colours too
    out = render_png(
        scene, tmp_path / "sbs.png", view="bev", width=2 * 240, height=200, side_by_side=True, annotate=False
    )
    img = np.asarray(Image.open(out).convert("RGB"))
    assert img.shape[0] == 200 and img.shape[1] >= 470
    half = img.shape[1] // 2
    left, right = img[:, : half - 4], img[:, half + 4 :]
    for part in (left, right):
        assert_not_blank(part, 0.03)
    assert color_pixels(left, C.GT_BOX_COLOR, 10) > 20 and color_pixels(left, C.PRED_BOX_COLOR, 10) == 0
    assert color_pixels(right, C.PRED_BOX_COLOR, 10) > 20 and color_pixels(right, C.GT_BOX_COLOR, 10) == 0


def test_render_png_annotated_has_legend(tmp_path, scannet):
    from PIL import Image

    out = render_png(scannet, tmp_path / "a" / "room.png", view="bev", color_by="gt", width=320, height=240)
    img = np.asarray(Image.open(out).convert("RGB"))
    assert img.shape == (240, 320, 3)
    # the legend box top-left: white with black text
    corner = img[6:40, 6:60]
    assert (corner.max(-1) < 60).sum() > 10


def test_preprocessed_scene_matches_raw(tmp_path, samples_dir, scannet, renderer):
    """A scene written by the preprocessing (pc3d.data.scannet) loads in the same aligned frame as the raw scan."""
    from pc3d.data.scannet import convert_scene, write_scene
    from pc3d.data.scannet.raw import read_label_tsv

    raw = samples_dir / "scannet" / "scans" / "scene0000_00"
    table = read_label_tsv(samples_dir / "scannet" / "meta" / "scannetv2-labels.combined.tsv")
    out = convert_scene(raw, table)
    folder = write_scene(tmp_path / "scans", "scene0000_00", out["arrays"], out["meta"])
    pre = load_scene(folder)
    np.testing.assert_allclose(pre.coord, scannet.coord, atol=1e-5)
    np.testing.assert_array_equal(pre.segment, scannet.segment)
    np.testing.assert_allclose(pre.boxes_gt, scannet.boxes_gt, atol=1e-5)
    assert_not_blank(renderer.render(pre, "bev", "gt").image, 0.12)
