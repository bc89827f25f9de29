"""Headless renderer on synthetic scenes: camera projection, colours, renderer lifetime."""

from __future__ import annotations

import numpy as np
import pytest
from viz_checks import color_pixels

from pc3d.viz import colors as C
from pc3d.viz.camera import project
from pc3d.viz.render import Renderer, save_png
from pc3d.viz.scene import Scene


def _blob_scene() -> Scene:
    """A grey floor plus one dense 'chair' blob off-centre."""
    rng = np.random.default_rng(0)
    floor = np.c_[rng.random((3000, 2)) * [6, 4], np.zeros(3000)]
    blob = rng.normal([4.5, 1.0, 0.3], 0.05, (300, 3))
    coord = np.concatenate([floor, blob]).astype(np.float32)
    seg = np.r_[np.full(3000, -1), np.full(300, 2)]
    return Scene(name="blob", coord=coord, segment=seg, class_names=("wall", "floor", "chair"))


@pytest.mark.parametrize("view", ["bev", "oblique", "driver"])
def test_projection_matches_render(view):
    """Box captions are placed with the renderer's matrices: the projected blob centre lands on the blob."""
    scene = _blob_scene()
    r = Renderer(320, 240)
    frame = r.render(scene, view, "gt")
    chair = np.abs(frame.image.astype(int) - C.SCANNET_COLORS["chair"]).max(-1) <= 4
    assert chair.sum() > 20
    ys, xs = np.nonzero(chair)
    px, ok = project(frame.view_proj, np.array([[4.5, 1.0, 0.3]]), 320, 240)
    assert ok[0]
    assert abs(px[0, 0] - xs.mean()) < 6 and abs(px[0, 1] - ys.mean()) < 6, (px, xs.mean(), ys.mean())
    r.close()


def test_bev_orientation_indoor():
    """Bird's-eye indoors: +x to the right, +y up in the image."""
    scene = _blob_scene()
    img = Renderer(320, 240).render(scene, "bev", "gt").image
    ys, xs = np.nonzero(np.abs(img.astype(int) - C.SCANNET_COLORS["chair"]).max(-1) <= 4)
    assert xs.mean() > 200 and ys.mean() > 130  # blob at large x, small y: right and low


def test_two_renderers_alternate():
    scene = _blob_scene()
    a, b = Renderer(64, 48), Renderer(80, 48)
    for _ in range(2):
        assert a.render(scene, "bev", "gt").image.shape == (48, 64, 3)
        assert b.render(scene, "bev", "gt").image.shape == (48, 80, 3)
    b.close()
    a.close()


def test_unlabelled_points_are_grey_and_background_white():
    img = Renderer(160, 120).render(_blob_scene(), "bev", "gt").image
    assert color_pixels(img, C.UNLABELLED_COLOR, 4) > 500
    assert color_pixels(img, C.BACKGROUND, 0) > 0


def test_bad_sizes_and_paths(tmp_path):
    with pytest.raises(ValueError, match="at least 16x16"):
        Renderer(8, 200)
    with pytest.raises(ValueError, match="expected a .png"):
        save_png(np.zeros((4, 4, 3), np.uint8), tmp_path / "x.jpg")
