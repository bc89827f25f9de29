"""KITTI official-protocol evaluation on hand-built cases with hand-derived AP.

How the official curve works (and why the numbers below are what they are): the TP scores found
at thresh 0 are sorted and ``get_thresholds`` keeps one score each time recall passes the next
multiple of 1/40 (``current_recall += 0.025``; a score is skipped while the next one is closer to
that target). Precision is then measured at each kept threshold *index* k (0, 1, 2, …) and
interpolated as the max over indices ≥ k. R11 averages indices 0, 4, …, 40 (/11), R40 indices
1..40 (/40). With ``n`` GTs and ``d`` perfectly matched detections of distinct scores:

* n = 80: each TP adds recall 1/80, so thresholds are kept at TP ranks i = 0, then every odd i
  (i = 1, 3, …) — ``1 + d/2`` thresholds for even d; d = 80 gives 41 thresholds.
* n = 40: every TP is kept: d = 40 gives 40 thresholds (indices 0..39, index 40 stays 0).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from pc3d.metrics.kitti_eval import get_thresholds, kitti_eval


def _obj(name, k, height=50.0, occluded=0, truncated=0.0, alpha=0.0, score=0.0, dx=0.0):
    """One object; k spreads objects 10 m apart in camera x and 200 px apart in the image."""
    return {
        "name": name,
        "truncated": truncated,
        "occluded": occluded,
        "alpha": alpha,
        "bbox": [100.0 + 200 * k + dx, 150.0, 180.0 + 200 * k + dx, 150.0 + height],
        "dimensions": [4.0, 1.5, 1.8],  # l, h, w
        "location": [-15.0 + 10.0 * k + dx, 1.6, 20.0],
        "rotation_y": 0.3,
        "score": score,
    }


def _anno(objs):
    keys = ["name", "truncated", "occluded", "alpha", "bbox", "dimensions", "location", "rotation_y", "score"]
    out = {}
    for k in keys:
        vals = [o[k] for o in objs]
        if k == "name":
            out[k] = np.asarray(vals, dtype="<U16")
        elif k in ("bbox", "dimensions", "location"):
            out[k] = np.asarray(vals, dtype=np.float64).reshape(-1, 4 if k == "bbox" else 3)
        else:
            out[k] = np.asarray(vals, dtype=np.float64)
    out["occluded"] = out["occluded"].astype(np.int64)
    return out


def _scene(n_frames=20, per_frame=4, detect=None, det_alpha_offset=0.0):
    """n_frames × per_frame easy Cars and perfect detections of the GT indices in ``detect``
    (default all) with distinct scores (earlier GT → higher score)."""
    gts, dts = [], []
    g = 0
    total = n_frames * per_frame
    for _ in range(n_frames):
        go, do = [], []
        for k in range(per_frame):
            go.append(_obj("Car", k, alpha=0.1))
            if detect is None or g in detect:
                do.append(_obj("Car", k, alpha=0.1 + det_alpha_offset, score=1.0 - g / (2 * total)))
            g += 1
        gts.append(go)
        dts.append(do)
    return gts, dts


def _run(gts, dts, classes=("Car",)):
    return kitti_eval([_anno(g) for g in gts], [_anno(d) for d in dts], classes)


def _check(res, key, expected, levels=(0, 1, 2)):
    for lv in levels:
        assert res[key][lv] == pytest.approx(expected, abs=1e-3), (key, lv, res[key])


def test_get_thresholds_counts():
    # n = 80, d = 80: kept at i = 0 and every odd i → 1 + 40 = 41 thresholds.
    assert len(get_thresholds(np.linspace(1, 0.5, 80), 80)) == 41
    # n = 40, d = 40: every score kept.
    assert len(get_thresholds(np.linspace(1, 0.5, 40), 40)) == 40
    # n = 80, d = 40: 1 + 20 = 21.
    assert len(get_thresholds(np.linspace(1, 0.5, 40), 80)) == 21


def test_perfect_predictions_100():
    # 80 GTs, all matched: 41 thresholds, precision 1 at each → R11 = 11/11, R40 = 40/40.
    res = _run(*_scene())["Car"]
    for m in ("bbox", "bev", "3d", "aos"):
        _check(res, f"{m}_R11", 100.0)
        _check(res, f"{m}_R40", 100.0)


def test_perfect_with_40_gts_r11_differs_from_r40():
    # 40 GTs, all matched: 40 thresholds → precision 1 at indices 0..39, 0 at index 40.
    # R11 = (indices 0,4,…,36 → 10 ones) / 11 = 90.909; R40 = (indices 1..39 → 39 ones) / 40 = 97.5.
    res = _run(*_scene(n_frames=10))["Car"]
    for m in ("bbox", "bev", "3d"):
        _check(res, f"{m}_R11", 1000 / 11)
        _check(res, f"{m}_R40", 97.5)


def test_missed_half():
    # 80 GTs, only the 40 of the first 10 frames detected: thresholds at i = 0 and odd i ≤ 39
    # → 21 thresholds, precision 1 → indices 0..20 are 1.
    # R11 = (0, 4, 8, 12, 16, 20 → 6) / 11 = 54.545; R40 = (1..20 → 20) / 40 = 50.
    res = _run(*_scene(detect=set(range(40))))["Car"]
    for m in ("bbox", "bev", "3d"):
        _check(res, f"{m}_R11", 600 / 11)
        _check(res, f"{m}_R40", 50.0)


def test_one_miss():
    # 80 GTs, the last one missed (79 TPs): kept at i = 0, odd i ≤ 77 (40 so far) and the last
    # score i = 78 (always kept) → 41 thresholds with precision 1 → both 100 (the curve is indexed
    # by threshold, so one miss in 80 does not show: the official behaviour).
    res = _run(*_scene(detect=set(range(79))))["Car"]
    _check(res, "3d_R11", 100.0)
    _check(res, "3d_R40", 100.0)
    # One miss out of 40 GTs does show: 39 TPs → 39 thresholds (indices 0..38) with precision 1.
    # R11 = (0, 4, …, 36 → 10) / 11 = 90.909; R40 = (1..38 → 38) / 40 = 95.
    res = _run(*_scene(n_frames=10, detect=set(range(39))))["Car"]
    _check(res, "3d_R11", 1000 / 11)
    _check(res, "3d_R40", 95.0)


def _add(dts, frame, obj):
    dts[frame] = [*dts[frame], obj]


def test_one_false_positive_with_top_score():
    # 80 perfect TPs plus one FP (far from every GT) with the highest score. At the threshold of the
    # i-th TP the FP is counted: precision (i+1)/(i+2), increasing with i, so the interpolated
    # precision at every index is the last one, 80/81. R11 = R40 = 8000/81 = 98.765.
    gts, dts = _scene()
    _add(dts, 0, _obj("Car", 6, score=2.0))
    res = _run(gts, dts)["Car"]
    for m in ("bbox", "bev", "3d"):
        _check(res, f"{m}_R11", 8000 / 81)
        _check(res, f"{m}_R40", 8000 / 81)


def test_false_positive_below_last_threshold_is_free():
    # An FP scoring below every TP is never above a threshold: still 100.
    gts, dts = _scene()
    _add(dts, 0, _obj("Car", 6, score=0.01))
    _check(_run(gts, dts)["Car"], "3d_R40", 100.0)


def test_ignored_class_hit():
    # A Van GT matched by a top-scoring Car detection: the Van is a neighbour class, so the GT is
    # ignored and the detection matched to it is neither TP nor FP → 100.
    gts, dts = _scene()
    gts[0] = [*gts[0], _obj("Van", 6)]
    _add(dts, 0, _obj("Car", 6, score=2.0))
    res = _run(gts, dts)["Car"]
    for m in ("bbox", "bev", "3d"):
        _check(res, f"{m}_R11", 100.0)
        _check(res, f"{m}_R40", 100.0)
    # The same detection on a Truck (not a neighbour of Car) is an FP → 8000/81 as above.
    gts[0][-1] = _obj("Truck", 6)
    _check(_run(gts, dts)["Car"], "3d_R40", 8000 / 81)
    # Person_sitting is the neighbour of Pedestrian.
    gp = [[_obj("Pedestrian", k) for k in range(4)] for _ in range(20)]
    dp = [[_obj("Pedestrian", k, score=1 - (4 * f + k) / 160) for k in range(4)] for f in range(20)]
    gp[0].append(_obj("Person_sitting", 6))
    dp[0].append(_obj("Pedestrian", 6, score=2.0))
    _check(_run(gp, dp, ("Pedestrian",))["Pedestrian"], "3d_R40", 100.0)


def test_difficulty_filter_ignores_gt_and_small_detection():
    # An extra Car 30 px high (moderate, not easy) detected with the top score. Easy: the GT is
    # ignored and the detection (height 30 < 40) is ignored too → 100. Moderate/hard: 81 GTs all
    # matched → the 81 TPs give ≥ 41 thresholds with precision 1 → 100.
    gts, dts = _scene()
    gts[0] = [*gts[0], _obj("Car", 6, height=30.0)]
    _add(dts, 0, _obj("Car", 6, height=30.0, score=2.0))
    _check(_run(gts, dts)["Car"], "3d_R40", 100.0)
    # An occluded=2 Car (hard only) detected with the top score but as a *larger* 2D box (height 50):
    # easy and moderate ignore the GT; the detection (height ≥ 40) matched to an ignored GT is
    # not an FP → 100 everywhere.
    gts, dts = _scene()
    gts[0] = [*gts[0], _obj("Car", 6, occluded=2)]
    _add(dts, 0, _obj("Car", 6, score=2.0))
    _check(_run(gts, dts)["Car"], "3d_R40", 100.0)


def test_dontcare_only_for_bbox():
    # A top-scoring FP lying on a DontCare region: not an FP for the 2D bbox metric (100), an FP
    # for BEV and 3D (8000/81).
    gts, dts = _scene()
    dc = _obj("DontCare", 6)
    dc.update(
        truncated=-1, occluded=-1, alpha=-10, dimensions=[-1, -1, -1], location=[-1000] * 3, rotation_y=-10
    )
    gts[0] = [*gts[0], dc]
    _add(dts, 0, _obj("Car", 6, score=2.0))
    res = _run(gts, dts)["Car"]
    _check(res, "bbox_R40", 100.0)
    _check(res, "bev_R40", 8000 / 81)
    _check(res, "3d_R40", 8000 / 81)


def test_aos_half_for_quarter_turn():
    # Perfect boxes, every alpha off by π/2: similarity (1 + cos(π/2)) / 2 = 0.5 per TP → AOS 50.
    res = _run(*_scene(det_alpha_offset=math.pi / 2))["Car"]
    _check(res, "aos_R11", 50.0)
    _check(res, "aos_R40", 50.0)
    _check(res, "bbox_R40", 100.0)


def test_3d_iou_threshold_is_strict_and_uses_height():
    # Car IoU threshold 0.7 (strict). Shift every detection 0.2 m along camera x (box l = 4 along x,
    # ry = 0.3 so the shift is not along the box axis): BEV IoU < 1 but > 0.7 → still 100.
    # Then lower each detection by 0.6 m in y (h = 1.5): y-overlap 0.9/1.5 → 3D IoU ≤ 0.6 × BEV IoU < 0.7
    # → no 3D TP (0), BEV unaffected (100).
    gts, dts = _scene()
    for d in dts:
        for o in d:
            o["location"] = [o["location"][0] + 0.2, o["location"][1] + 0.6, o["location"][2]]
    res = _run(gts, dts)["Car"]
    _check(res, "bev_R40", 100.0)
    _check(res, "3d_R40", 0.0)


def test_no_alpha_disables_aos_and_bad_input():
    gts, dts = _scene(n_frames=2)
    for d in dts:
        for o in d:
            o["alpha"] = -10.0
    res = _run(gts, dts)["Car"]
    assert math.isnan(res["aos_R40"][0])
    with pytest.raises(ValueError, match="prediction frames"):
        kitti_eval([_anno(g) for g in gts], [_anno(d) for d in dts[:1]], ["Car"])
    bad = _anno(dts[0])
    del bad["score"]
    with pytest.raises(ValueError, match="score"):
        kitti_eval([_anno(gts[0])], [bad], ["Car"])
    with pytest.raises(ValueError, match="unknown class"):
        kitti_eval([_anno(gts[0])], [_anno(dts[0])], ["Bus"])
