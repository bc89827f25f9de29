"""The interactive viewer's state machine (keys, colour modes, layers) without a window."""

from __future__ import annotations

import numpy as np
import pytest

from pc3d.viz.interactive import ViewerState
from pc3d.viz.scene import Scene

NAMES = ("wall", "floor", "chair")


def _scenes():
    rng = np.random.default_rng(0)
    seg = rng.integers(0, 3, 20)
    a = Scene(
        name="a",
        coord=rng.random((20, 3)),
        color=rng.integers(0, 255, (20, 3)).astype(np.uint8),
        segment=seg,
        pred=(seg + 1) % 3,
        class_names=NAMES,
        boxes_gt=np.array([[0.5, 0.5, 0.5, 1, 1, 1, 0]]),
        labels_gt=np.array([2]),
        boxes_pred=np.array([[0.4, 0.5, 0.5, 1, 1, 1, 0]]),
        scores_pred=np.array([0.9]),
        labels_pred=np.array([2]),
        box_class_names=NAMES,
    )
    b = Scene(name="b", coord=rng.random((10, 3)))  # points only
    return [a, b]


def test_keys_cycle_scenes_colours_and_layers():
    st = ViewerState(_scenes(), color_by="gt")
    assert st.scene.name == "a" and st.color_modes() == ["rgb", "gt", "pred", "error"]
    seen = [st.color_by]
    for _ in range(4):
        assert st.handle_key("c") == "redraw"
        seen.append(st.color_by)
    assert seen == ["gt", "pred", "error", "rgb", "gt"]
    assert [b.name for b in st.layers().boxes] == ["gt_boxes", "pred_boxes"]
    assert st.handle_key("G") == "redraw" and [b.name for b in st.layers().boxes] == ["pred_boxes"]
    assert st.handle_key("F") == "redraw" and st.layers().boxes == []
    assert st.handle_key("B") == "redraw" and len(st.layers().boxes) == 2
    assert st.handle_key("B") == "redraw" and st.layers().boxes == []
    assert st.handle_key("V") == "camera" and st.view == "driver"
    assert st.handle_key("L") == "redraw" and not st.show_captions
    assert st.handle_key("x") is None
    # next scene has no labels: colouring falls back to rgb (height ramp)
    assert st.handle_key("n") == "scene" and st.scene.name == "b" and st.color_by == "rgb"
    assert st.color_modes() == ["rgb"]
    assert st.handle_key("C") == "redraw" and st.color_by == "rgb"
    assert st.handle_key("N") == "scene" and st.scene.name == "a"
    assert st.handle_key("P") == "scene" and st.scene.name == "b"
    text = st.legend_text()
    assert "[2/2] b" in text and "colour: rgb" in text


def test_lazy_loading_and_bad_scene_keeps_position(tmp_path):
    good = tmp_path / "g.npz"
    np.savez(good, coord=np.zeros((4, 3), np.float32))
    st = ViewerState([good, tmp_path / "missing.npz"])
    assert st.scene.name == "g"
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        st.handle_key("N")
    assert st.index == 0 and st.scene.name == "g"


def test_bad_arguments():
    with pytest.raises(ValueError, match="at least one scene"):
        ViewerState([])
    with pytest.raises(ValueError, match="color_by"):
        ViewerState(_scenes(), color_by="x")
    with pytest.raises(ValueError, match="view"):
        ViewerState(_scenes(), view="x")
