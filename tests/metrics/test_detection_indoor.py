"""Indoor VOC all-point mAP with axis-aligned 3D IoU, checked against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pc3d.metrics.detection_indoor import (
    IndoorDetectionMAP,
    indoor_map,
    iou3d_axis_aligned,
    voc_ap_area,
)


def box(x, y=0.0, z=0.0, s=1.0):
    return [x, y, z, s, s, s, 0.0]


def test_iou_axis_aligned():
    a = np.array([box(0.0)])
    b = np.array([box(0.5), box(3.0), [0, 0, 0, 1, 1, 1, 1.3]])
    iou = iou3d_axis_aligned(a, b)
    np.testing.assert_allclose(iou, [[0.5 / 1.5, 0.0, 1.0]])  # yaw ignored


def test_voc_ap_area_hand_computed():
    # precision envelope: [1, 1, 2/3, 2/3]; recall steps 1/3 at 1.0 and 1/3 at 2/3
    rec = np.array([1, 1, 2, 2]) / 3
    prec = np.array([1, 0.5, 2 / 3, 0.5])
    assert voc_ap_area(rec, prec) == pytest.approx(1 / 3 + (1 / 3) * (2 / 3))


def _case():
    gts = [
        {"boxes": torch.tensor([box(0.0), box(5.0)]), "labels": torch.tensor([0, 0])},
        {"boxes": torch.tensor([box(0.0), box(2.0, s=2.0)]), "labels": torch.tensor([0, 1])},
    ]
    preds = [
        # 0.9 TP (exact), 0.8 FP (no overlap), 0.6 duplicate of the matched box -> FP
        {
            "boxes": torch.tensor([box(0.0), box(10.0), box(0.1)]),
            "scores": torch.tensor([0.9, 0.8, 0.6]),
            "labels": torch.tensor([0, 0, 0]),
        },
        # 0.7 TP for class 0; class 1: a half-overlapping box (IoU 1/3) and a class-2 box without GT
        {
            "boxes": torch.tensor([box(0.0), box(3.0, s=2.0), box(0.0)]),
            "scores": torch.tensor([0.7, 0.5, 0.4]),
            "labels": torch.tensor([0, 1, 2]),
        },
    ]
    return preds, gts


def test_indoor_map_hand_computed():
    preds, gts = _case()
    r = indoor_map(preds, gts, num_classes=3, iou_thresholds=(0.25, 0.5))
    # class 0: ranked TP, FP, TP, FP over 3 GT -> AP = 1/3 + 1/3 * 2/3
    ap0 = 1 / 3 + (1 / 3) * (2 / 3)
    np.testing.assert_allclose(r["ap"][:, 0], [ap0, ap0])
    # class 1: IoU = 1/3 -> TP at 0.25, FP at 0.5
    np.testing.assert_allclose(r["ap"][:, 1], [1.0, 0.0])
    assert np.isnan(r["ap"][:, 2]).all()  # no ground truth: left out of the mean
    np.testing.assert_allclose(r["map"], [(ap0 + 1) / 2, ap0 / 2])
    np.testing.assert_allclose(r["recall"][:, 0], [2 / 3, 2 / 3])


def test_strict_threshold():
    gts = [{"boxes": torch.tensor([box(0.0, s=2.0)]), "labels": torch.tensor([0])}]
    # IoU exactly 0.25 (volume 2 inside volume 8) is not a match (strict >)
    preds = [
        {
            "boxes": torch.tensor([[0.0, 0.0, -0.5, 2.0, 2.0, 0.5, 0.0]]),
            "scores": torch.tensor([1.0]),
            "labels": torch.tensor([0]),
        }
    ]
    assert iou3d_axis_aligned(preds[0]["boxes"].numpy(), gts[0]["boxes"].numpy())[0, 0] == pytest.approx(0.25)
    r = indoor_map(preds, gts, 1, (0.25, 0.2))
    np.testing.assert_allclose(r["ap"][:, 0], [0.0, 1.0])


def test_metric_class_matches_function_and_resets():
    preds, gts = _case()
    m = IndoorDetectionMAP(3, (0.25, 0.5))
    m.update(preds[:1], gts[:1])
    m.update(preds[1:], gts[1:])
    out = m.compute()
    ref = indoor_map(preds, gts, 3, (0.25, 0.5))
    assert float(out["map_25"]) == pytest.approx(ref["map"][0])
    assert float(out["map_50"]) == pytest.approx(ref["map"][1])
    assert math.isnan(float(out["ap_25"][2]))
    m.reset()
    m.update(preds[:1], gts[:1])
    only = indoor_map(preds[:1], gts[:1], 3, (0.25, 0.5))
    assert float(m.compute()["map_25"]) == pytest.approx(only["map"][0])


def test_mismatched_lengths():
    with pytest.raises(ValueError, match="preds/gts"):
        indoor_map([], [{"boxes": torch.zeros(0, 7), "labels": torch.zeros(0)}], 1)
