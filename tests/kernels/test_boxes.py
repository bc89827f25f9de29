"""Box ops vs brute-force numpy references: points in boxes, rotated/aligned IoU, NMS."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pc3d.kernels import boxes as B

YAWS = [0.0, math.pi / 2, -math.pi / 2, math.pi, -math.pi, 0.3, -2.1]


def _inside_ref(pts: np.ndarray, box: np.ndarray) -> np.ndarray:
    c, s = math.cos(-box[6]), math.sin(-box[6])
    rot = np.array([[c, -s], [s, c]])
    local = (pts[:, :2] - box[:2]) @ rot.T  # rotate by -yaw into the box frame
    return (
        (np.abs(pts[:, 2] - box[2]) <= box[5] / 2)
        & (np.abs(local[:, 0]) < box[3] / 2)
        & (np.abs(local[:, 1]) < box[4] / 2)
    )


def _raster_iou(a: np.ndarray, b: np.ndarray, res: int = 250) -> tuple[float, float]:
    """Brute force (BEV IoU, 3D IoU) by midpoint sampling of the BEV bounding square."""
    r = max(np.hypot(a[3], a[4]), np.hypot(b[3], b[4])) / 2
    lo = np.minimum(a[:2], b[:2]) - r
    hi = np.maximum(a[:2], b[:2]) + r
    h = (hi - lo) / res
    xs = lo[0] + (np.arange(res) + 0.5) * h[0]
    ys = lo[1] + (np.arange(res) + 0.5) * h[1]
    gx, gy = np.meshgrid(xs, ys)
    pts = np.stack([gx.ravel(), gy.ravel(), np.zeros(gx.size)], 1)
    ia = _inside_ref(pts, np.r_[a[:2], 0, a[3:5], 1, a[6]])
    ib = _inside_ref(pts, np.r_[b[:2], 0, b[3:5], 1, b[6]])
    cell = h[0] * h[1]
    inter = (ia & ib).sum() * cell
    bev = inter / (a[3] * a[4] + b[3] * b[4] - inter)
    zo = max(0.0, min(a[2] + a[5] / 2, b[2] + b[5] / 2) - max(a[2] - a[5] / 2, b[2] - b[5] / 2))
    i3 = inter * zo
    return bev, i3 / (a[3:6].prod() + b[3:6].prod() - i3)


def _random_boxes(rng, n, spread=4.0):
    b = np.zeros((n, 7))
    b[:, :2] = rng.uniform(-spread, spread, (n, 2))
    b[:, 2] = rng.uniform(-0.5, 0.5, n)
    b[:, 3:6] = rng.uniform(0.5, 3.0, (n, 3))
    b[:, 6] = rng.choice(YAWS + list(rng.uniform(-np.pi, np.pi, 8)), n)
    return b


def test_iou_vs_raster_reference():
    rng = np.random.default_rng(0)
    a, b = _random_boxes(rng, 12, 1.5), _random_boxes(rng, 12, 1.5)
    bev = B.boxes_iou_bev(a, b)
    i3 = B.boxes_iou3d(a, b)
    assert isinstance(bev, np.ndarray) and bev.shape == (12, 12)
    nonzero = 0
    for i in range(12):
        for j in range(i % 2, 12, 6):
            rb, r3 = _raster_iou(a[i], b[j])
            assert abs(bev[i, j] - rb) < 0.015, (i, j, bev[i, j], rb)
            assert abs(i3[i, j] - r3) < 0.015
            nonzero += rb > 0.05
    assert nonzero >= 4  # the comparison is not all zeros


def test_iou_numba_vs_torch_vertex_set():
    rng = np.random.default_rng(1)
    a = torch.from_numpy(_random_boxes(rng, 40, 2.0))
    b = torch.from_numpy(_random_boxes(rng, 30, 2.0))
    b[:5] = a[:5]  # identical boxes
    b[5:10] = a[5:10]
    b[5:10, 0] += a[5:10, 3] * torch.cos(a[5:10, 6])  # shifted along its own x: touching
    b[5:10, 1] += a[5:10, 3] * torch.sin(a[5:10, 6])
    for fn in (B.boxes_iou_bev, B.boxes_iou3d):
        x = fn(a, b, backend="numba")
        y = fn(a, b, backend="torch")
        torch.testing.assert_close(x, y, atol=1e-9, rtol=0)
    x = B.boxes_iou_bev(a, b)
    torch.testing.assert_close(torch.diagonal(x)[:5], torch.ones(5, dtype=x.dtype), atol=1e-9, rtol=0)
    torch.testing.assert_close(torch.diagonal(x)[5:10], torch.zeros(5, dtype=x.dtype), atol=1e-9, rtol=0)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_iou_adversarial_exact(backend):
    sq = [0.0, 0.0, 0.0, 2.0, 2.0, 2.0]
    rows = [
        [*sq, 0.0],
        [*sq, math.pi / 4],  # octagon intersection
        [0.0, 0.0, 0.0, 2.0, 4.0, 2.0, 0.0],
        [0.0, 0.0, 0.0, 4.0, 2.0, 2.0, math.pi / 2],  # == row 2
        [0.0, 0.0, 0.0, 4.0, 2.0, 2.0, -math.pi / 2],  # == row 2
        [0.0, 0.0, 0.0, 2.0, 4.0, 2.0, math.pi],  # == row 2
        [2.0, 0.0, 0.0, 2.0, 2.0, 2.0, 0.0],  # touches row 0
        [1.0, 1.0, 1.0, 2.0, 2.0, 2.0, math.pi / 2],  # parallel edges, quarter BEV, half height
        [0.0, 0.0, 2.0, 2.0, 2.0, 2.0, 0.0],  # touches row 0 in z
    ]
    t = torch.tensor(rows, dtype=torch.float64)
    bev = B.boxes_iou_bev(t, t, backend=backend)
    i3 = B.boxes_iou3d(t, t, backend=backend)
    oct_ = 4 * 2 * (math.sqrt(2) - 1)
    assert bev[0, 1].item() == pytest.approx(oct_ / (8 - oct_), abs=1e-9)
    for i in (3, 4, 5):
        assert bev[2, i].item() == pytest.approx(1.0, abs=1e-9)
        assert i3[2, i].item() == pytest.approx(1.0, abs=1e-9)
    assert bev[0, 6].item() == pytest.approx(0.0, abs=1e-12)
    assert bev[0, 7].item() == pytest.approx(1 / 7, abs=1e-9)
    assert i3[0, 7].item() == pytest.approx(1 / 15, abs=1e-9)
    assert bev[0, 8].item() == pytest.approx(1.0, abs=1e-9) and i3[0, 8].item() == 0.0
    torch.testing.assert_close(bev, bev.T, atol=1e-12, rtol=0)


def test_aligned_iou_and_nms():
    rng = np.random.default_rng(2)
    a = _random_boxes(rng, 20)
    a[:, 6] = rng.uniform(-3, 3, 20)  # ignored
    iou = B.boxes_iou3d_aligned(a, a)
    for i in range(20):
        for j in range(20):
            lo = np.maximum(a[i, :3] - a[i, 3:6] / 2, a[j, :3] - a[j, 3:6] / 2)
            hi = np.minimum(a[i, :3] + a[i, 3:6] / 2, a[j, :3] + a[j, 3:6] / 2)
            inter = np.clip(hi - lo, 0, None).prod()
            ref = inter / (a[i, 3:6].prod() + a[j, 3:6].prod() - inter)
            assert iou[i, j] == pytest.approx(ref, abs=1e-12)
    scores = rng.uniform(size=20)
    scores[3] = scores[7]  # tie: lower index first
    keep = B.nms_aligned(a, scores, 0.1)
    ref_iou = np.zeros_like(iou)
    ref_iou[:] = iou
    assert keep.tolist() == _greedy(ref_iou, scores, 0.1)


def _greedy(iou, scores, thr):
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    keep, dead = [], set()
    for i in order:
        if i in dead:
            continue
        keep.append(i)
        dead |= {j for j in order if iou[i, j] > thr}
    return keep


def test_nms_rotated_vs_reference():
    rng = np.random.default_rng(3)
    b = _random_boxes(rng, 60, 3.0)
    b[10] = b[11]  # identical boxes
    scores = rng.uniform(size=60).astype(np.float32)
    scores[10] = scores[11]
    iou = B.boxes_iou_bev(b, b)
    for thr in (0.0, 0.1, 0.5):
        keep = B.nms_rotated(torch.from_numpy(b), torch.from_numpy(scores), thr)
        assert keep.dtype == torch.int64
        assert keep.tolist() == _greedy(iou, scores, thr)
    assert (
        11 not in B.nms_rotated(b, scores, 0.5).tolist() or 10 not in B.nms_rotated(b, scores, 0.5).tolist()
    )
    assert B.nms_rotated(np.zeros((0, 7)), np.zeros(0), 0.5).shape == (0,)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_points_in_boxes_vs_reference(backend):
    rng = np.random.default_rng(4)
    boxes = _random_boxes(rng, 15, 3.0)
    pts = rng.uniform(-5, 5, (2000, 3))
    pts[:, 2] = rng.uniform(-2, 2, 2000)
    pts[:15] = boxes[:, :3]  # centres
    pts[15, :] = [boxes[0, 0], boxes[0, 1], boxes[0, 2] + boxes[0, 5] / 2]  # z face: inclusive
    mask_ref = np.stack([_inside_ref(pts, bx) for bx in boxes], 1)
    first_ref = np.where(mask_ref.any(1), mask_ref.argmax(1), -1)
    pt = torch.from_numpy(pts)
    mask = B.points_in_boxes_mask(pt, torch.from_numpy(boxes), backend=backend)
    first = B.points_in_boxes(pt, torch.from_numpy(boxes), backend=backend)
    np.testing.assert_array_equal(mask.numpy(), mask_ref)
    np.testing.assert_array_equal(first.numpy(), first_ref)
    assert (first_ref >= 0).sum() > 100 and mask_ref.sum(1).max() >= 2  # overlapping boxes exercised
    assert first[15].item() == 0
    empty = B.points_in_boxes(pt, torch.zeros(0, 7, dtype=torch.float64), backend=backend)
    assert (empty == -1).all()


def test_points_in_boxes_yaw_convention():
    box = np.array([[0.0, 0.0, 0.0, 4.0, 0.2, 1.0, math.pi / 2]])  # long axis along +y
    pts = np.array([[0.0, 1.5, 0.0], [1.5, 0.0, 0.0]])
    assert B.points_in_boxes(pts, box).tolist() == [0, -1]


def test_rotated_polygon_iou_2d_kitti_convention():
    rect = np.array([[0.0, 0.0, 10.0, 0.2, math.pi / 6]])
    cw = np.array([[4 * math.cos(-math.pi / 6), 4 * math.sin(-math.pi / 6), 0.5, 0.5, 0.0]])
    ccw = np.array([[4 * math.cos(math.pi / 6), 4 * math.sin(math.pi / 6), 0.5, 0.5, 0.0]])
    assert B.rotated_polygon_iou_2d(rect, cw)[0, 0] > 0.05
    assert B.rotated_polygon_iou_2d(rect, ccw)[0, 0] == 0.0
    rng = np.random.default_rng(5)
    r = np.c_[rng.uniform(-2, 2, (10, 2)), rng.uniform(0.5, 3, (10, 2)), rng.uniform(-3, 3, 10)]
    bx = np.c_[r[:, :2], np.zeros(10), r[:, 2:4], np.ones(10), -r[:, 4]]
    np.testing.assert_allclose(B.rotated_polygon_iou_2d(r, r), B.boxes_iou_bev(bx, bx), atol=1e-12)
    inter = B.rotated_polygon_intersection_2d(r, r)
    np.testing.assert_allclose(np.diag(inter), r[:, 2] * r[:, 3], rtol=1e-9)


def test_box_bad_input():
    good = torch.rand(3, 7)
    with pytest.raises(ValueError, match="boxes_a"):
        B.boxes_iou_bev(torch.rand(3, 6), good)
    nan = good.clone()
    nan[1, 2] = float("nan")
    with pytest.raises(ValueError, match="boxes_b"):
        B.boxes_iou3d(good, nan)
    neg = good.clone()
    neg[0, 4] = -1
    with pytest.raises(ValueError, match="boxes_a"):
        B.boxes_iou3d_aligned(neg, good)
    with pytest.raises(ValueError, match="scores"):
        B.nms_rotated(good, torch.rand(2), 0.5)
    with pytest.raises(ValueError, match="points"):
        B.points_in_boxes(torch.rand(5, 2), good)
    with pytest.raises(ValueError, match="points"):
        B.points_in_boxes(torch.tensor([[0.0, float("nan"), 0.0]]), good)
    with pytest.raises(ValueError, match="boxes_a"):
        B.rotated_polygon_iou_2d(torch.rand(3, 7), torch.rand(3, 5))
