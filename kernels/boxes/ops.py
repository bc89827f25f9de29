"""Box ops on ``(M, 7)`` boxes ``[x, y, z, dx, dy, dz, yaw]`` (centre, full sizes, yaw about +z, CCW).

CPU tensors and numpy arrays run numba kernels (exact convex-polygon clipping in float64);
other devices run torch implementations (vertex-set intersection), except NMS, which is
sequential and runs on the CPU for any input device (the result is returned on the input's
device). Numpy in, numpy out.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..points._common import numba_threads
from . import _numba as K
from . import _torch as T


def _as_tensor(x: Any, name: str) -> tuple[Tensor, bool]:
    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x)), True
    if isinstance(x, Tensor):
        return x, False
    raise ValueError(f"{name}: expected a torch.Tensor or numpy array, got {type(x).__name__}")


def _boxes(x: Any, name: str, cols: int = 7, size_cols: tuple[int, ...] = (3, 4, 5)) -> tuple[Tensor, bool]:
    t, was_np = _as_tensor(x, name)
    if t.dim() != 2 or t.shape[1] != cols:
        raise ValueError(f"{name}: expected shape (M, {cols}), got {tuple(t.shape)}")
    if not t.is_floating_point():
        t = t.double()
    if t.numel():
        if not bool(torch.isfinite(t).all()):
            raise ValueError(f"{name}: contains NaN or infinite values")
        if bool((t[:, list(size_cols)] < 0).any()):
            raise ValueError(f"{name}: box sizes must be >= 0")
    return t, was_np


def _out(x: Tensor, like: Tensor, was_np: bool) -> Any:
    dtype = like.dtype if like.is_floating_point() else torch.float64
    if x.device.type == "cpu":  # numpy cast: avoids a torch thread-pool launch for a plain copy
        x = torch.from_numpy(x.numpy().astype(torch.empty(0, dtype=dtype).numpy().dtype, copy=False))
    else:
        x = x.to(dtype)
    return x.numpy() if was_np else x


def _f64(t: Tensor) -> np.ndarray:
    """CPU tensor -> float64 numpy (cast in numpy, single-threaded)."""
    return np.ascontiguousarray(t.detach().numpy(), dtype=np.float64)


def _backend(backend: str, t: Tensor) -> str:
    if backend not in ("auto", "numba", "torch"):
        raise ValueError(f"backend: expected 'auto', 'numba' or 'torch', got {backend!r}")
    if backend == "auto":
        return "numba" if t.device.type == "cpu" else "torch"
    return backend


def _overlap(
    a_bev: Tensor, b_bev: Tensor, za: Tensor | None, zb: Tensor | None, mode: int, be: str
) -> Tensor:
    if be == "numba":
        dev = a_bev.device
        z0 = np.zeros((0, 2))
        with numba_threads(50.0 * a_bev.shape[0] * b_bev.shape[0]):
            out = K.pairwise_overlap(
                a_bev.detach().double().cpu().numpy(),
                b_bev.detach().double().cpu().numpy(),
                z0 if za is None else za.detach().double().cpu().numpy(),
                z0 if zb is None else zb.detach().double().cpu().numpy(),
                mode,
            )
        return torch.from_numpy(out).to(dev)
    d = lambda t: None if t is None else t.detach().double()  # noqa: E731
    return T.pairwise_overlap(d(a_bev), d(b_bev), d(za), d(zb), mode)


def _pair(a: Any, b: Any, cols: int = 7, size_cols: tuple[int, ...] = (3, 4, 5)):
    ta, np_a = _boxes(a, "boxes_a", cols, size_cols)
    tb, _ = _boxes(b, "boxes_b", cols, size_cols)
    if ta.device != tb.device:
        raise ValueError(f"boxes_b: on {tb.device}, but boxes_a is on {ta.device}")
    return ta, tb, np_a


def boxes_iou_bev(boxes_a: Any, boxes_b: Any, *, backend: str = "auto") -> Any:
    """Rotated bird's-eye-view IoU ``(N, M)`` of ``boxes_a (N, 7)`` and ``boxes_b (M, 7)`` (x-y plane)."""
    a, b, was_np = _pair(boxes_a, boxes_b)
    cols = [0, 1, 3, 4, 6]
    return _out(_overlap(a[:, cols], b[:, cols], None, None, 0, _backend(backend, a)), a, was_np)


def boxes_iou3d(boxes_a: Any, boxes_b: Any, *, backend: str = "auto") -> Any:
    """Rotated 3D IoU ``(N, M)``: BEV intersection x z-overlap / (V_a + V_b - intersection) (mmdet3d)."""
    a, b, was_np = _pair(boxes_a, boxes_b)
    cols = [0, 1, 3, 4, 6]
    ov = _overlap(a[:, cols], b[:, cols], a[:, [2, 5]], b[:, [2, 5]], 1, _backend(backend, a))
    return _out(ov, a, was_np)


def _kitti_rects(t: Tensor) -> Tensor:
    # (cx, cy, w, l, angle) with corners c + [[cos, sin], [-sin, cos]] @ (+-w/2, +-l/2): yaw = -angle
    return torch.stack([t[:, 0], t[:, 1], t[:, 2], t[:, 3], -t[:, 4]], 1)


def rotated_polygon_iou_2d(rects_a: Any, rects_b: Any, *, backend: str = "auto") -> Any:
    """IoU ``(N, M)`` of 2D rotated rectangles ``(N, 5)``/``(M, 5)`` rows ``[cx, cy, w, l, angle]``.

    Convention of the KITTI evaluation (``rotate_iou_eval`` of the official python port): the
    corners are ``(cx, cy) + [[cos a, sin a], [-sin a, cos a]] @ (+-w/2, +-l/2)``, i.e. ``w``
    lies along the first axis at ``angle = 0`` and ``angle`` turns clockwise in the
    (first, second) plane. KITTI passes camera ``(x, z, l, w, ry)``: BEV in the x-z plane.
    """
    a, b, was_np = _pair(rects_a, rects_b, 5, (2, 3))
    return _out(_overlap(_kitti_rects(a), _kitti_rects(b), None, None, 0, _backend(backend, a)), a, was_np)


def rotated_polygon_intersection_2d(rects_a: Any, rects_b: Any, *, backend: str = "auto") -> Any:
    """Intersection areas ``(N, M)`` of rectangles in the convention of :func:`rotated_polygon_iou_2d`.

    The KITTI 3D overlap is this area times the camera-y overlap over ``V_a + V_b - I``.
    """
    a, b, was_np = _pair(rects_a, rects_b, 5, (2, 3))
    return _out(_overlap(_kitti_rects(a), _kitti_rects(b), None, None, 2, _backend(backend, a)), a, was_np)


def boxes_iou3d_aligned(boxes_a: Any, boxes_b: Any) -> Any:
    """Axis-aligned 3D IoU ``(N, M)`` (yaw ignored: sizes ``dx, dy, dz`` along x, y, z), any device."""
    a, b, was_np = _pair(boxes_a, boxes_b)
    a64, b64 = a.double(), b.double()
    lo = torch.maximum(
        (a64[:, None, :3] - 0.5 * a64[:, None, 3:6]), (b64[None, :, :3] - 0.5 * b64[None, :, 3:6])
    )
    hi = torch.minimum(
        (a64[:, None, :3] + 0.5 * a64[:, None, 3:6]), (b64[None, :, :3] + 0.5 * b64[None, :, 3:6])
    )
    inter = (hi - lo).clamp(min=0).prod(-1)
    u = a64[:, 3:6].prod(-1)[:, None] + b64[:, 3:6].prod(-1)[None] - inter
    iou = torch.where(u > 0, inter / torch.where(u > 0, u, torch.ones_like(u)), torch.zeros_like(u))
    return _out(iou, a, was_np)


def _nms(boxes: Any, scores: Any, iou_threshold: float, mode: int) -> Any:
    b, was_np = _boxes(boxes, "boxes")
    s, _ = _as_tensor(scores, "scores")
    if s.dim() != 1 or s.shape[0] != b.shape[0]:
        raise ValueError(f"scores: expected shape ({b.shape[0]},), got {tuple(s.shape)}")
    if s.numel() and not bool(torch.isfinite(s).all()):
        raise ValueError("scores: contains NaN or infinite values")
    thr = float(iou_threshold)
    if not np.isfinite(thr):
        raise ValueError(f"iou_threshold: expected a finite float, got {iou_threshold!r}")
    order = torch.sort(-s.detach().double().cpu(), stable=True).indices.numpy()
    bd = b.detach().double().cpu().numpy()
    keep = K.nms_kernel(
        order, np.ascontiguousarray(bd[:, [0, 1, 3, 4, 6]]), np.ascontiguousarray(bd[:, [2, 5]]), mode, thr
    )
    return keep if was_np else torch.from_numpy(keep).to(b.device)


def nms_rotated(boxes: Any, scores: Any, iou_threshold: float) -> Any:
    """Greedy NMS with rotated BEV IoU: ``keep (K,)`` int64 indices by descending score.

    A box is suppressed when its BEV IoU with a kept, higher-scored box is ``> iou_threshold``;
    equal scores keep the lower index first.
    """
    return _nms(boxes, scores, iou_threshold, 0)


def nms_aligned(boxes: Any, scores: Any, iou_threshold: float) -> Any:
    """Greedy NMS with axis-aligned 3D IoU (yaw ignored, VoteNet-style): ``keep (K,)`` int64."""
    return _nms(boxes, scores, iou_threshold, 1)


def _pib_inputs(points: Any, boxes: Any) -> tuple[Tensor, Tensor, bool]:
    p, was_np = _as_tensor(points, "points")
    if p.dim() != 2 or p.shape[1] < 3:
        raise ValueError(f"points: expected shape (N, >=3), got {tuple(p.shape)}")
    if not p.is_floating_point():
        raise ValueError(f"points: expected a floating-point array, got {p.dtype}")
    if p.numel() and not bool(torch.isfinite(p[:, :3]).all()):
        raise ValueError("points: contains NaN or infinite coordinates")
    b, _ = _boxes(boxes, "boxes")
    if b.device != p.device:
        raise ValueError(f"boxes: on {b.device}, but points are on {p.device}")
    return p[:, :3], b, was_np


def points_in_boxes(points: Any, boxes: Any, *, backend: str = "auto") -> Any:
    """Index ``(N,)`` int64 of the lowest-index box containing each point, ``-1`` if none.

    ``points (N, >=3)`` (only x, y, z used). Inside: ``|z - cz| <= dz/2`` and, in the box frame,
    ``|x| < dx/2`` and ``|y| < dy/2`` (OpenPCDet's rule; boxes are centred, not bottom-based).
    """
    p, b, was_np = _pib_inputs(points, boxes)
    if _backend(backend, p) == "numba":
        with numba_threads(4.0 * p.shape[0] * b.shape[0]):
            first, _ = K.points_in_boxes_kernel(_f64(p), _f64(b), False)
        return first if was_np else torch.from_numpy(first)
    mask = T.points_in_boxes_mask(p.double(), b.double())
    big = torch.full_like(mask, b.shape[0], dtype=torch.int64)
    idx = (
        torch.where(mask, torch.arange(b.shape[0], device=p.device)[None], big).amin(1)
        if b.shape[0]
        else None
    )
    if idx is None:
        return torch.full((p.shape[0],), -1, dtype=torch.int64, device=p.device)
    return torch.where(idx == b.shape[0], torch.full_like(idx, -1), idx)


def points_in_boxes_mask(points: Any, boxes: Any, *, backend: str = "auto") -> Any:
    """``(N, M)`` bool: point ``i`` inside box ``j`` (rule of :func:`points_in_boxes`)."""
    p, b, was_np = _pib_inputs(points, boxes)
    if _backend(backend, p) == "numba":
        with numba_threads(4.0 * p.shape[0] * b.shape[0]):
            _, mask = K.points_in_boxes_kernel(_f64(p), _f64(b), True)
        return mask if was_np else torch.from_numpy(mask)
    return T.points_in_boxes_mask(p.double(), b.double())
