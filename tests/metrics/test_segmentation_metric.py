"""Confusion-matrix segmentation metric against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from pc3d.metrics.segmentation import (
    SegmentationMetric,
    confusion_matrix,
    format_class_table,
    scores_from_confusion,
)


def test_confusion_matrix_and_scores_by_hand():
    target = torch.tensor([0, 0, 0, 1, 1, 2, -1, -1])
    pred = torch.tensor([0, 0, 1, 1, 0, 1, 2, 3])
    conf = confusion_matrix(pred, target, 4)
    assert conf.tolist() == [[2, 1, 0, 0], [1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]]
    s = scores_from_confusion(conf)
    # class 0: I=2, U=3+3-2=4; class 1: I=1, U=2+3-1=4; class 2: I=0, U=1; class 3: never seen -> NaN
    assert s["iou"][:3].tolist() == pytest.approx([0.5, 0.25, 0.0])
    assert math.isnan(float(s["iou"][3]))
    assert float(s["miou"]) == pytest.approx(0.75 / 3)
    assert s["acc"][:3].tolist() == pytest.approx([2 / 3, 0.5, 0.0])
    assert float(s["macc"]) == pytest.approx((2 / 3 + 0.5) / 3)
    assert float(s["allacc"]) == pytest.approx(3 / 6)


def test_metric_accumulates_split_wide_not_per_batch_mean():
    m = SegmentationMetric(2)
    m.update(torch.tensor([0, 0]), torch.tensor([0, 0]))  # batch IoU would be 1.0 for class 0
    m.update(torch.tensor([0, 1, 1, 1]), torch.tensor([1, 1, 1, 1]))
    s = m.compute()
    # split-wide: class 0 I=2 U=3; class 1 I=3 U=4
    assert s["iou"].tolist() == pytest.approx([2 / 3, 3 / 4])
    m.reset()
    assert int(m.confmat.sum()) == 0


def test_metric_rejects_bad_labels_and_formats_table():
    with pytest.raises(ValueError, match="target"):
        confusion_matrix(torch.tensor([0]), torch.tensor([5]), 3)
    with pytest.raises(ValueError, match="pred"):
        confusion_matrix(torch.tensor([0, 1]), torch.tensor([0]), 3)
    table = format_class_table(scores_from_confusion(torch.tensor([[1, 0], [0, 0]])), ["wall", "floor"])
    assert "wall" in table and "floor" in table and "mIoU 1.0000" in table
