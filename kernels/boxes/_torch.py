"""Torch implementations of the box kernels (used for non-CPU tensors; private).

The rectangle intersection uses the vertex-set method (corners inside the other box plus
edge-edge crossings, sorted by angle, shoelace), an algorithm independent of the numba
Sutherland-Hodgman clipping, so the two cross-check each other in the tests.
"""

from __future__ import annotations

import torch
from torch import Tensor


def corners_bev(b: Tensor) -> Tensor:
    """``(M, 4, 2)`` CCW corners of rows ``[cx, cy, dx, dy, yaw]``."""
    sx = b.new_tensor([0.5, -0.5, -0.5, 0.5])
    sy = b.new_tensor([0.5, 0.5, -0.5, -0.5])
    lx = sx[None] * b[:, 2:3]
    ly = sy[None] * b[:, 3:4]
    c, s = torch.cos(b[:, 4:5]), torch.sin(b[:, 4:5])
    return torch.stack([b[:, 0:1] + c * lx - s * ly, b[:, 1:2] + s * lx + c * ly], dim=-1)


def _cross2(a: Tensor, b: Tensor) -> Tensor:
    return a[..., 0] * b[..., 1] - a[..., 1] * b[..., 0]


def _inside(pts: Tensor, quad: Tensor, eps: Tensor) -> Tensor:
    """``(P, K)`` whether ``pts (P, K, 2)`` lie in the CCW quads ``(P, 4, 2)`` (with tolerance)."""
    e = torch.roll(quad, -1, dims=1) - quad  # (P, 4, 2)
    rel = pts[:, :, None, :] - quad[:, None, :, :]  # (P, K, 4, 2)
    cr = _cross2(e[:, None].expand_as(rel), rel)
    return (cr >= -eps[:, None, None]).all(-1)


def quad_intersection(qa: Tensor, qb: Tensor) -> Tensor:
    """Intersection areas ``(P,)`` of paired CCW quads ``qa, qb (P, 4, 2)`` (float64 recommended)."""
    p = qa.shape[0]
    if p == 0:
        return qa.new_zeros(0)
    scale = (qa.amax(1) - qa.amin(1)).abs().sum(-1) + (qb.amax(1) - qb.amin(1)).abs().sum(-1)
    eps = 1e-12 * scale * scale
    in_a = _inside(qa, qb, eps)
    in_b = _inside(qb, qa, eps)
    # edge crossings: edge i of a (p1 -> p2) with edge j of b (p3 -> p4)
    p1 = qa[:, :, None, :]
    r = (torch.roll(qa, -1, 1) - qa)[:, :, None, :]
    p3 = qb[:, None, :, :]
    s = (torch.roll(qb, -1, 1) - qb)[:, None, :, :]
    den = _cross2(r.expand(-1, -1, 4, -1), s.expand(-1, 4, -1, -1))  # (P, 4, 4)
    qp = p3 - p1
    safe = torch.where(den.abs() > 0, den, torch.ones_like(den))
    t = _cross2(qp, s.expand(-1, 4, -1, -1)) / safe
    u = _cross2(qp, r.expand(-1, -1, 4, -1)) / safe
    tol = 1e-12
    ok = (
        (den.abs() > 1e-15 * scale[:, None, None] ** 2)
        & (t >= -tol)
        & (t <= 1 + tol)
        & (u >= -tol)
        & (u <= 1 + tol)
    )
    x = (p1 + t[..., None] * r).reshape(p, 16, 2)
    pts = torch.cat([qa, qb, x], 1)  # (P, 24, 2)
    valid = torch.cat([in_a, in_b, ok.reshape(p, 16)], 1)
    cnt = valid.sum(1)
    w = valid.to(pts.dtype)
    center = (pts * w[..., None]).sum(1) / cnt.clamp(min=1)[:, None]
    d = pts - center[:, None]
    ang = torch.atan2(d[..., 1], d[..., 0])
    ang = torch.where(valid, ang, torch.full_like(ang, 10.0))
    order = torch.argsort(ang, dim=1)
    sp = torch.gather(pts, 1, order[..., None].expand(-1, -1, 2))
    k = torch.arange(24, device=pts.device)[None]
    nxt = torch.where(k + 1 < cnt[:, None], k + 1, torch.zeros_like(k))
    sn = torch.gather(sp, 1, nxt[..., None].expand(-1, -1, 2))
    term = _cross2(sp - center[:, None], sn - center[:, None])
    term = torch.where(k < cnt[:, None], term, torch.zeros_like(term))
    area = 0.5 * term.sum(1)
    return torch.where(cnt >= 3, area.clamp(min=0), torch.zeros_like(area))


def pairwise_overlap(a: Tensor, b: Tensor, za: Tensor | None, zb: Tensor | None, mode: int) -> Tensor:
    """Same contract as the numba ``pairwise_overlap`` (mode 0 BEV IoU, 1 3D IoU, 2 BEV intersection)."""
    n, m = a.shape[0], b.shape[0]
    ca, cb = corners_bev(a), corners_bev(b)
    rows = max(1, (1 << 16) // max(m, 1))  # bound the (pairs, 24, ...) temporaries
    parts = []
    for r0 in range(0, n, rows):
        r1 = min(n, r0 + rows)
        qa = ca[r0:r1, None].expand(r1 - r0, m, 4, 2).reshape(-1, 4, 2)
        qb = cb[None].expand(r1 - r0, m, 4, 2).reshape(-1, 4, 2)
        parts.append(quad_intersection(qa, qb).reshape(r1 - r0, m))
    inter = torch.cat(parts) if parts else a.new_zeros(0, m)
    if mode == 2:
        return inter
    area_a = (a[:, 2] * a[:, 3])[:, None]
    area_b = (b[:, 2] * b[:, 3])[None]
    if mode == 0:
        u = area_a + area_b - inter
    else:
        lo = torch.maximum((za[:, 0] - 0.5 * za[:, 1])[:, None], (zb[:, 0] - 0.5 * zb[:, 1])[None])
        hi = torch.minimum((za[:, 0] + 0.5 * za[:, 1])[:, None], (zb[:, 0] + 0.5 * zb[:, 1])[None])
        inter = inter * (hi - lo).clamp(min=0)
        u = area_a * za[:, 1][:, None] + area_b * zb[:, 1][None] - inter
    return torch.where(u > 0, inter / torch.where(u > 0, u, torch.ones_like(u)), torch.zeros_like(u))


def points_in_boxes_mask(pts: Tensor, boxes: Tensor) -> Tensor:
    """``(N, M)`` bool, same inside rule as the numba kernel."""
    s = pts[:, None, :2] - boxes[None, :, :2]
    c, sn = torch.cos(boxes[:, 6])[None], torch.sin(boxes[:, 6])[None]
    lx = s[..., 0] * c + s[..., 1] * sn
    ly = -s[..., 0] * sn + s[..., 1] * c
    inz = (pts[:, None, 2] - boxes[None, :, 2]).abs() <= 0.5 * boxes[None, :, 5]
    return inz & (lx.abs() < 0.5 * boxes[None, :, 3]) & (ly.abs() < 0.5 * boxes[None, :, 4])
