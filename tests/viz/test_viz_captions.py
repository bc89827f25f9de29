"""Box captions stay legible (no caption covers another) and predicted boxes are drawn best first."""

from __future__ import annotations

import numpy as np
import pytest

from pc3d.viz import annotate as annotate_mod
from pc3d.viz.cli import MIN_SCORE, build_parser
from pc3d.viz.geometry import BoxLayer, Layers
from pc3d.viz.scene import Scene


def _layer(name: str, positions: list[tuple[float, float]], texts: list[str]) -> BoxLayer:
    caps = [(np.array([x, y, 0.0]), t) for (x, y), t in zip(positions, texts)]
    return BoxLayer(name, np.zeros((2, 3)), np.zeros((1, 2), np.int64), np.full((1, 3), 200, np.uint8), caps)


def _drawn_captions(monkeypatch, layers: Layers) -> list[str]:
    from PIL import ImageDraw

    drawn: list[str] = []
    original = ImageDraw.ImageDraw.text

    def text(self, xy, text, *args, **kwargs):
        if kwargs.get("stroke_width"):  # captions are drawn with a white stroke, the legend without
            drawn.append(text)
        return original(self, xy, text, *args, **kwargs)

    monkeypatch.setattr(ImageDraw.ImageDraw, "text", text)
    image = np.zeros((200, 300, 3), np.uint8)
    out = annotate_mod.annotate(image, layers, np.eye(4), legend=False)
    assert out.shape == image.shape
    return drawn


def test_overlapping_captions_are_left_out_first_come_first_kept(monkeypatch):
    # identity view-projection: x, y in [-1, 1] map onto the image
    gt = _layer("gt_boxes", [(0.0, 0.0), (0.6, 0.6)], ["Car", "Pedestrian"])
    pred = _layer(
        "pred_boxes", [(0.01, 0.0), (0.0, -0.6), (0.02, -0.61)], ["Car 0.90", "Car 0.80", "Car 0.40"]
    )
    layers = Layers(np.zeros((0, 3)), np.zeros((0, 3), np.uint8), [gt, pred], [], "t")
    assert _drawn_captions(monkeypatch, layers) == ["Car", "Pedestrian", "Car 0.80"]


def test_distant_captions_are_all_drawn(monkeypatch):
    pred = _layer("pred_boxes", [(-0.8, -0.8), (0.0, 0.0), (0.7, 0.7)], ["a", "b", "c"])
    layers = Layers(np.zeros((0, 3)), np.zeros((0, 3), np.uint8), [pred], [], "t")
    assert _drawn_captions(monkeypatch, layers) == ["a", "b", "c"]


def test_predicted_boxes_are_kept_best_first():
    boxes = np.arange(21, dtype=np.float32).reshape(3, 7)
    s = Scene("s", np.zeros((1, 3)), boxes_pred=boxes, scores_pred=[0.2, 0.9, 0.5], labels_pred=[0, 1, 2],
              box_class_names=("a", "b", "c"))  # fmt: skip
    assert s.scores_pred.tolist() == pytest.approx([0.9, 0.5, 0.2])
    assert s.labels_pred.tolist() == [1, 2, 0]
    assert np.array_equal(s.boxes_pred, boxes[[1, 2, 0]])


def test_min_score_option():
    assert build_parser().parse_args(["x.npz"]).min_score == MIN_SCORE > 0
    assert build_parser().parse_args(["x.npz", "--min-score", "0"]).min_score == 0.0
    for bad in ("1.5", "-0.1", "high"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["x.npz", "--min-score", bad])
