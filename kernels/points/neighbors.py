"""Sampling and neighbourhood queries on packed clouds (mmdet3d semantics, global indices).

Queries of cloud ``b`` (rows ``query_offsets[b]:query_offsets[b+1]``) only see the points of
cloud ``b`` (rows ``offsets[b]:offsets[b+1]``); every returned index is a global packed row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pc3d.kernels.packing import batch_index, check_offsets, offsets_from_counts

from ._common import (
    as_tensor,
    bbox3,
    check_backend,
    check_points,
    check_same_batch,
    numba_threads,
)
from ._neigh_numba import ball_query_grid_kernel, ball_query_kernel, fps_kernel, knn_kernel


def _np(x: Tensor) -> np.ndarray:
    x = x.detach()
    if x.dtype not in (torch.float32, torch.float64):
        x = x.float()
    return x.contiguous().numpy()


def _prep(xyz: Any, offsets: Any, query: Any, query_offsets: Any, qname: str, backend: str):
    xyz, _ = as_tensor(xyz, "xyz")
    xyz = check_points(xyz, "xyz")
    query, _ = as_tensor(query, qname)
    query = check_points(query, qname)
    if query.device != xyz.device:
        raise ValueError(f"{qname}: on {query.device}, but xyz is on {xyz.device}")
    offsets = check_offsets(offsets, xyz.shape[0], "offsets", device=xyz.device)
    qoff = check_offsets(
        query_offsets, query.shape[0], f"{qname[:-1] if qname.endswith('s') else qname}_offsets"
    )
    qoff = qoff.to(xyz.device)
    check_same_batch(offsets, qoff, "offsets", f"{qname}_offsets")
    if query.dtype != xyz.dtype:
        query = query.to(xyz.dtype)
    return xyz, offsets, query, qoff, check_backend(backend, xyz)


# ----------------------------------------------------------------------------- FPS
def furthest_point_sample(
    xyz: Tensor, offsets: Tensor | None, num_samples: int | Sequence[int], *, backend: str = "auto"
) -> tuple[Tensor, Tensor]:
    """Distance-based farthest point sampling per cloud (mmdet3d D-FPS).

    Args:
        xyz: ``(N, 3)`` float points; offsets: ``(B+1,)`` (``None``: one cloud).
        num_samples: samples per cloud (one int for all clouds, or ``B`` ints, each >= 0).

    Returns:
        ``idx (S,)`` int64 global indices, cloud by cloud, and ``new_offsets (B+1,)``. Each cloud
        starts with its first point; then the point farthest (squared distance) from the chosen
        set is taken, the lowest index on ties. A cloud with fewer points than requested
        returns all its points in FPS order and then repeats that sequence cyclically. Requesting
        samples from an empty cloud raises ``ValueError``.
    """
    xyz, _ = as_tensor(xyz, "xyz")
    xyz = check_points(xyz, "xyz")
    offsets = check_offsets(offsets, xyz.shape[0], "offsets", device=xyz.device)
    nb_clouds = offsets.numel() - 1
    if isinstance(num_samples, (int, np.integer)):
        ks = [int(num_samples)] * nb_clouds
    else:
        ks = [int(k) for k in num_samples]
        if len(ks) != nb_clouds:
            raise ValueError(f"num_samples: expected {nb_clouds} values (one per cloud), got {len(ks)}")
    counts = (offsets[1:] - offsets[:-1]).tolist()
    for b, (k, n) in enumerate(zip(ks, counts)):
        if k < 0:
            raise ValueError(f"num_samples: must be >= 0, got {k} for cloud {b}")
        if k > 0 and n == 0:
            raise ValueError(f"num_samples: cloud {b} is empty but {k} samples were requested")
    soff = offsets_from_counts(ks)
    be = check_backend(backend, xyz)
    if be == "numba":
        work = float(sum(k * n for k, n in zip(ks, counts)))  # distance evaluations
        with numba_threads(work if nb_clouds > 1 else 0.0):
            idx = torch.from_numpy(fps_kernel(_np(xyz), offsets.cpu().numpy(), soff.numpy()))
    else:
        idx = _fps_torch(xyz.detach(), offsets.tolist(), ks)
    return idx.to(xyz.device), soff.to(xyz.device)


def _fps_torch(xyz: Tensor, offsets: list[int], ks: list[int]) -> Tensor:
    out = []
    for b, k in enumerate(ks):
        s, e = offsets[b], offsets[b + 1]
        if k == 0:
            continue
        p = xyz[s:e]
        n = e - s
        kk = min(k, n)
        sel = torch.empty(kk, dtype=torch.int64, device=xyz.device)
        dist = torch.full((n,), 1e10, dtype=xyz.dtype, device=xyz.device)
        cur = torch.zeros((), dtype=torch.int64, device=xyz.device)
        sel[0] = 0
        for t in range(1, kk):
            dist = torch.minimum(dist, ((p - p[cur]) ** 2).sum(1))
            cur = torch.argmax(dist)
            sel[t] = cur
        if k > kk:
            sel = sel.repeat((k + kk - 1) // kk)[:k]
        out.append(sel + s)
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.int64, device=xyz.device)


# ----------------------------------------------------------------------------- ball query
def ball_query(
    xyz: Tensor,
    offsets: Tensor | None,
    centers: Tensor,
    center_offsets: Tensor | None,
    radius: float,
    k: int,
    *,
    backend: str = "auto",
) -> Tensor:
    """Up to ``k`` neighbours within ``radius`` of each centre (mmdet3d ``ball_query``).

    Points of the centre's cloud are scanned in index order; a point is a hit when
    ``d2 < radius**2`` or ``d2 == 0``. The first hit fills all ``k`` slots and later hits
    overwrite slots ``1, 2, ...`` until ``k`` hits. **Empty ball** (differs from mmdet3d, which
    returns index 0): all slots hold the cloud's nearest point to the centre (lowest index on
    ties). A centre whose cloud has no points gets ``-1``.

    Returns ``idx (M, k)`` int64 global indices.
    """
    xyz, offsets, centers, coff, be = _prep(xyz, offsets, centers, center_offsets, "centers", backend)
    r = float(radius)
    if not np.isfinite(r) or r < 0:
        raise ValueError(f"radius: expected a finite value >= 0, got {radius!r}")
    if not isinstance(k, (int, np.integer)) or k <= 0:
        raise ValueError(f"k: expected a positive int, got {k!r}")
    k = int(k)
    cb = batch_index(coff)
    if be == "numba":
        use_grid, work = _use_grid(xyz, offsets, coff, r, k)
        with numba_threads(work * centers.shape[0]):
            if use_grid:
                out = ball_query_grid_kernel(
                    _np(xyz), offsets.cpu().numpy(), _np(centers), coff.cpu().numpy(), r, k
                )
            else:
                out = ball_query_kernel(
                    _np(xyz), offsets.cpu().numpy(), _np(centers), cb.cpu().numpy(), r * r, k
                )
        return torch.from_numpy(out)
    return _ball_query_torch(xyz.detach(), offsets.tolist(), centers.detach(), coff.tolist(), r * r, k)


def _use_grid(xyz: Tensor, offsets: Tensor, coff: Tensor, r: float, k: int) -> tuple[bool, float]:
    """Cost model on the largest cloud: an in-order scan visits about ``n * k / hits`` points per
    centre; the grid visits ``27 * n * r^3 / V`` points plus 27 binary searches, and pays a sort.
    Returns the choice and the estimated work per centre."""
    if r <= 0 or xyz.shape[0] == 0:
        return False, float(xyz.shape[0])
    counts = (offsets[1:] - offsets[:-1]).cpu()
    b = int(torch.argmax(counts))
    s, e = int(offsets[b]), int(offsets[b + 1])
    mq = int(coff[b + 1] - coff[b])
    lo, hi = bbox3(xyz[s:e].detach().cpu().numpy())
    ext = np.maximum(hi - lo, r)
    n = e - s
    density = n / float(ext.prod())
    hits = density * 4.19 * r**3
    scan = n * min(1.0, k / max(hits, 1e-9))
    grid = 27.0 * density * r**3 + 27.0 * np.log2(max(n, 2)) + 20.0 * n / max(mq, 1)
    return grid < scan, min(grid, scan)


def _chunks(m: int, n: int, budget: int = 1 << 24):
    step = max(1, budget // max(n, 1))
    return range(0, m, step), step


def _ball_query_torch(xyz, offsets, centers, coff, r2, k):
    out = torch.full((centers.shape[0], k), -1, dtype=torch.int64, device=xyz.device)
    for b in range(len(offsets) - 1):
        s, e, qs, qe = offsets[b], offsets[b + 1], coff[b], coff[b + 1]
        n = e - s
        if n == 0 or qe == qs:
            continue
        p = xyz[s:e]
        starts, step = _chunks(qe - qs, n)
        ar = torch.arange(n, device=xyz.device)
        for q0 in starts:
            c = centers[qs + q0 : min(qs + q0 + step, qe)]
            d2 = ((c[:, None, :] - p[None]) ** 2).sum(-1)
            hit = (d2 < r2) | (d2 == 0)
            key = torch.where(hit, ar[None], torch.full_like(d2, n, dtype=torch.int64))
            kk = min(k, n)
            first = torch.topk(key, kk, dim=1, largest=False, sorted=True).values
            if kk < k:
                first = torch.cat([first, first.new_full((first.shape[0], k - kk), n)], 1)
            nearest = torch.argmin(d2, dim=1)
            fill = torch.where(first[:, :1] < n, first[:, :1], nearest[:, None])
            res = torch.where(first < n, first, fill)
            out[qs + q0 : qs + q0 + c.shape[0]] = res + s
    return out


# ----------------------------------------------------------------------------- kNN / three_nn
def knn(
    xyz: Tensor,
    offsets: Tensor | None,
    query: Tensor,
    query_offsets: Tensor | None,
    k: int,
    *,
    backend: str = "auto",
) -> tuple[Tensor, Tensor]:
    """``k`` nearest points of the query's cloud: ``idx (M, k)`` int64 and ``dist2 (M, k)`` ascending.

    Ties go to the lower index. When the cloud has fewer than ``k`` points the missing slots
    are ``idx = -1`` and ``dist2 = inf``. (mmdet3d returns the transposed ``(B, k, M)``.)
    """
    xyz, offsets, query, qoff, be = _prep(xyz, offsets, query, query_offsets, "query", backend)
    if not isinstance(k, (int, np.integer)) or k <= 0:
        raise ValueError(f"k: expected a positive int, got {k!r}")
    k = int(k)
    qb = batch_index(qoff)
    if be == "numba":
        nmax = int((offsets[1:] - offsets[:-1]).max()) if offsets.numel() > 1 else 0
        with numba_threads(query.shape[0] * nmax):
            idx, d = knn_kernel(_np(xyz), offsets.cpu().numpy(), _np(query), qb.cpu().numpy(), k)
        return torch.from_numpy(idx), torch.from_numpy(d)
    return _knn_torch(xyz.detach(), offsets.tolist(), query.detach(), qoff.tolist(), k)


def _knn_torch(xyz, offsets, query, qoff, k):
    m = query.shape[0]
    idx = torch.full((m, k), -1, dtype=torch.int64, device=xyz.device)
    dist = torch.full((m, k), float("inf"), dtype=xyz.dtype, device=xyz.device)
    for b in range(len(offsets) - 1):
        s, e, qs, qe = offsets[b], offsets[b + 1], qoff[b], qoff[b + 1]
        n = e - s
        if n == 0 or qe == qs:
            continue
        p = xyz[s:e]
        kk = min(k, n)
        starts, step = _chunks(qe - qs, n)
        for q0 in starts:
            c = query[qs + q0 : min(qs + q0 + step, qe)]
            d2 = ((c[:, None, :] - p[None]) ** 2).sum(-1)
            v, i = torch.topk(d2, kk, dim=1, largest=False, sorted=True)
            idx[qs + q0 : qs + q0 + c.shape[0], :kk] = i + s
            dist[qs + q0 : qs + q0 + c.shape[0], :kk] = v
    return idx, dist


def three_nn(
    xyz_known: Tensor,
    known_offsets: Tensor | None,
    xyz_unknown: Tensor,
    unknown_offsets: Tensor | None,
    *,
    backend: str = "auto",
) -> tuple[Tensor, Tensor]:
    """Three nearest known points of every unknown point: ``idx (M, 3)`` int64, ``dist (M, 3)``.

    ``dist`` is the Euclidean distance (mmdet3d's wrapper returns the sqrt too), ascending.
    If a known cloud has 1 or 2 points, the missing slots repeat the nearest index with
    ``dist = inf`` (so they get zero weight in :func:`three_interpolate_weights`). An unknown
    cloud with points whose known cloud is empty raises ``ValueError``.
    """
    xyz_known, _ = as_tensor(xyz_known, "xyz_known")
    xyz_known = check_points(xyz_known, "xyz_known")
    kn = check_offsets(known_offsets, xyz_known.shape[0], "known_offsets", device=xyz_known.device)
    xu, _ = as_tensor(xyz_unknown, "xyz_unknown")
    xu = check_points(xu, "xyz_unknown")
    un = check_offsets(unknown_offsets, xu.shape[0], "unknown_offsets", device=xyz_known.device)
    check_same_batch(kn, un, "known_offsets", "unknown_offsets")
    empty_known = ((kn[1:] - kn[:-1]) == 0) & ((un[1:] - un[:-1]) > 0)
    if bool(empty_known.any()):
        b = int(torch.nonzero(empty_known)[0])
        raise ValueError(f"known_offsets: cloud {b} has no known points but has unknown points")
    idx, d2 = knn(xyz_known, kn, xu, un, 3, backend=backend)
    missing = idx < 0
    if bool(missing.any()):
        idx = torch.where(missing, idx[:, :1].expand_as(idx), idx)
    return idx, torch.sqrt(d2)


def three_interpolate_weights(dist: Tensor) -> Tensor:
    """mmdet3d feature-propagation weights ``(M, 3)``: ``1/(d+1e-8)`` normalised over the 3."""
    w = 1.0 / (dist + 1e-8)
    return w / w.sum(1, keepdim=True)
