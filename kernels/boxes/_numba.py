"""Numba kernels for rotated boxes (private; see :mod:`pc3d.kernels.boxes`).

Rectangles are given by their 4 corners in counter-clockwise order. The intersection of two
convex polygons is computed exactly by Sutherland-Hodgman clipping (float64).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from ..points._common import ParallelKernel


@nb.njit(cache=True)
def corners_bev(boxes):
    """``(M, 4, 2)`` CCW corners of ``(M, >=5)`` rows ``[cx, cy, dx, dy, yaw]`` (yaw CCW)."""
    m = boxes.shape[0]
    out = np.empty((m, 4, 2), np.float64)
    sx = (0.5, -0.5, -0.5, 0.5)
    sy = (0.5, 0.5, -0.5, -0.5)
    for i in range(m):
        c = np.cos(boxes[i, 4])
        s = np.sin(boxes[i, 4])
        for k in range(4):
            lx = sx[k] * boxes[i, 2]
            ly = sy[k] * boxes[i, 3]
            out[i, k, 0] = boxes[i, 0] + c * lx - s * ly
            out[i, k, 1] = boxes[i, 1] + s * lx + c * ly
    return out


@nb.njit(cache=True, inline="always")
def _cross(ox, oy, ax, ay, px, py):
    return (ax - ox) * (py - oy) - (ay - oy) * (px - ox)


@nb.njit(cache=True)
def quad_intersection(a, b, buf0, buf1):
    """Area of the intersection of two CCW quads ``a, b (4, 2)``; ``buf0/buf1 (16, 2)`` scratch."""
    n = 4
    for k in range(4):
        buf0[k, 0] = a[k, 0]
        buf0[k, 1] = a[k, 1]
    src = buf0
    dst = buf1
    for e in range(4):
        ex0 = b[e, 0]
        ey0 = b[e, 1]
        ex1 = b[(e + 1) % 4, 0]
        ey1 = b[(e + 1) % 4, 1]
        scale = abs(ex1 - ex0) + abs(ey1 - ey0)
        eps = 1e-12 * scale * scale + 1e-300
        m = 0
        for k in range(n):
            px = src[k, 0]
            py = src[k, 1]
            qx = src[(k + 1) % n, 0]
            qy = src[(k + 1) % n, 1]
            dp = _cross(ex0, ey0, ex1, ey1, px, py)
            dq = _cross(ex0, ey0, ex1, ey1, qx, qy)
            pin = dp >= -eps
            qin = dq >= -eps
            if pin:
                dst[m, 0] = px
                dst[m, 1] = py
                m += 1
            if pin != qin:
                t = dp / (dp - dq)
                if t < 0.0:
                    t = 0.0
                elif t > 1.0:
                    t = 1.0
                dst[m, 0] = px + t * (qx - px)
                dst[m, 1] = py + t * (qy - py)
                m += 1
        n = m
        if n < 3:
            return 0.0
        src, dst = dst, src
    area = 0.0
    for k in range(n):
        area += src[k, 0] * src[(k + 1) % n, 1] - src[(k + 1) % n, 0] * src[k, 1]
    return max(0.5 * area, 0.0)


@nb.njit(cache=True, inline="always")
def _may_overlap(ca, ra, cb, rb):
    dx = ca[0] - cb[0]
    dy = ca[1] - cb[1]
    r = ra + rb
    return dx * dx + dy * dy <= r * r * (1.0 + 1e-9)


@nb.njit(parallel=True, cache=True)
def pairwise_overlap(a, b, za, zb, mode):
    """``(N, M)`` matrix for boxes ``a (N, 5)``, ``b (M, 5)`` ``[cx, cy, dx, dy, yaw]``.

    ``za/zb (K, 2)`` hold ``[z_center, dz]`` when ``mode == 1`` (3D IoU). ``mode``: 0 BEV IoU,
    1 3D IoU, 2 BEV intersection area.
    """
    na = a.shape[0]
    nbx = b.shape[0]
    out = np.zeros((na, nbx), np.float64)
    qa = corners_bev(a)
    qb = corners_bev(b)
    for i in nb.prange(na):
        buf0 = np.empty((16, 2), np.float64)
        buf1 = np.empty((16, 2), np.float64)
        ra = 0.5 * np.sqrt(a[i, 2] ** 2 + a[i, 3] ** 2)
        area_a = a[i, 2] * a[i, 3]
        for j in range(nbx):
            rb = 0.5 * np.sqrt(b[j, 2] ** 2 + b[j, 3] ** 2)
            if not _may_overlap(a[i], ra, b[j], rb):
                continue
            area_b = b[j, 2] * b[j, 3]
            if mode == 1:
                lo = max(za[i, 0] - 0.5 * za[i, 1], zb[j, 0] - 0.5 * zb[j, 1])
                hi = min(za[i, 0] + 0.5 * za[i, 1], zb[j, 0] + 0.5 * zb[j, 1])
                if hi <= lo:
                    continue
            inter = quad_intersection(qa[i], qb[j], buf0, buf1)
            if mode == 2:
                out[i, j] = inter
            elif mode == 0:
                u = area_a + area_b - inter
                out[i, j] = inter / u if u > 0 else 0.0
            else:
                inter3 = inter * (hi - lo)
                u = area_a * za[i, 1] + area_b * zb[j, 1] - inter3
                out[i, j] = inter3 / u if u > 0 else 0.0
    return out


@nb.njit(parallel=True, cache=True)
def points_in_boxes_kernel(pts, boxes, want_mask):
    """First containing box per point ``(N,)`` (-1 if none) and, if ``want_mask``, the ``(N, M)`` mask.

    Inside means ``|z - cz| <= dz/2`` and strictly ``|local x| < dx/2``, ``|local y| < dy/2`` (OpenPCDet).
    """
    n = pts.shape[0]
    m = boxes.shape[0]
    first = np.full(n, -1, np.int64)
    mask = np.zeros((n if want_mask else 0, m), np.bool_)
    cs = np.cos(boxes[:, 6])
    sn = np.sin(boxes[:, 6])
    for i in nb.prange(n):
        px = pts[i, 0]
        py = pts[i, 1]
        pz = pts[i, 2]
        for j in range(m):
            if abs(pz - boxes[j, 2]) > 0.5 * boxes[j, 5]:
                continue
            sx = px - boxes[j, 0]
            sy = py - boxes[j, 1]
            lx = sx * cs[j] + sy * sn[j]
            ly = -sx * sn[j] + sy * cs[j]
            if abs(lx) < 0.5 * boxes[j, 3] and abs(ly) < 0.5 * boxes[j, 4]:
                if first[i] < 0:
                    first[i] = j
                    if not want_mask:
                        break
                if want_mask:
                    mask[i, j] = True
    return first, mask


@nb.njit(cache=True)
def nms_kernel(order, bev, zc, mode, thr):
    """Greedy NMS over ``order`` (indices by descending score). ``mode`` 0 rotated BEV, 1 aligned 3D.

    ``bev (M, 5)`` ``[cx, cy, dx, dy, yaw]``; ``zc (M, 2)`` ``[cz, dz]``. Suppress when IoU > thr.
    """
    m = order.shape[0]
    keep = np.empty(m, np.int64)
    nk = 0
    sup = np.zeros(bev.shape[0], np.bool_)
    q = corners_bev(bev)
    buf0 = np.empty((16, 2), np.float64)
    buf1 = np.empty((16, 2), np.float64)
    for ii in range(m):
        i = order[ii]
        if sup[i]:
            continue
        keep[nk] = i
        nk += 1
        ra = 0.5 * np.sqrt(bev[i, 2] ** 2 + bev[i, 3] ** 2)
        area_i = bev[i, 2] * bev[i, 3]
        for jj in range(ii + 1, m):
            j = order[jj]
            if sup[j]:
                continue
            area_j = bev[j, 2] * bev[j, 3]
            if mode == 0:
                rb = 0.5 * np.sqrt(bev[j, 2] ** 2 + bev[j, 3] ** 2)
                if not _may_overlap(bev[i], ra, bev[j], rb):
                    continue
                inter = quad_intersection(q[i], q[j], buf0, buf1)
                u = area_i + area_j - inter
            else:
                inter = 1.0
                for d in range(2):
                    lo = max(bev[i, d] - 0.5 * bev[i, 2 + d], bev[j, d] - 0.5 * bev[j, 2 + d])
                    hi = min(bev[i, d] + 0.5 * bev[i, 2 + d], bev[j, d] + 0.5 * bev[j, 2 + d])
                    inter *= max(hi - lo, 0.0)
                lo = max(zc[i, 0] - 0.5 * zc[i, 1], zc[j, 0] - 0.5 * zc[j, 1])
                hi = min(zc[i, 0] + 0.5 * zc[i, 1], zc[j, 0] + 0.5 * zc[j, 1])
                inter *= max(hi - lo, 0.0)
                u = area_i * zc[i, 1] + area_j * zc[j, 1] - inter
            if u > 0 and inter / u > thr:
                sup[j] = True
    return keep[:nk]


# serial compilations for small jobs and forked processes (see ParallelKernel)
pairwise_overlap = ParallelKernel(pairwise_overlap)
points_in_boxes_kernel = ParallelKernel(points_in_boxes_kernel)
