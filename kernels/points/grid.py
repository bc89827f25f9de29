"""Voxelization and Pointcept-style grid sampling of packed point clouds.

Voxel ``(i, j, k)`` of a cloud holds the points with ``floor(coord / grid_size) == (i, j, k)``
(computed in float64, like Pointcept's numpy ``GridSample``). Voxels never mix clouds. Both
backends order the voxels lexicographically by (cloud, x, y, z) (Pointcept orders them by a
hash, i.e. arbitrarily) and list a voxel's points in increasing index order, so their outputs
are identical.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from pc3d.kernels.packing import batch_index, check_offsets, offsets_from_counts

from ._common import as_tensor, check_backend, check_points, numba_threads
from ._grid_numba import cloud_min_extent, floor_grid, group_sorted, pick_members, voxel_keys
from ._serial_numba import radix_sort_pairs


def _check_grid_size(grid_size: Any) -> float:
    try:
        gs = float(grid_size)
    except (TypeError, ValueError):
        raise ValueError(f"grid_size: expected a positive float, got {grid_size!r}") from None
    if not np.isfinite(gs) or gs <= 0:
        raise ValueError(f"grid_size: expected a positive finite float, got {grid_size!r}")
    return gs


def _groups_numba(coord: Tensor, offsets: Tensor, gs: float) -> tuple[Tensor, ...]:
    c = coord.detach().numpy()
    o = offsets.numpy()
    with numba_threads(20.0 * c.shape[0]):
        g, bad = floor_grid(c, gs)
        if bad:
            raise ValueError(f"coord: contains NaN or infinite coordinates ({bad} rows)")
        gmin, ext = cloud_min_extent(g, o)
        ext = (ext.max(0) + 1) if ext.size else np.ones(3, np.int64)
        _check_extent(ext, o.shape[0] - 1, gs)
        keys = voxel_keys(g, o, gmin, ext)
    order, skeys = radix_sort_pairs(keys)
    grid, batch, inverse, counts, vstart = group_sorted(order, skeys, ext)
    return tuple(torch.from_numpy(a) for a in (grid, batch, inverse, counts, vstart, order))


def _check_extent(ext, nb_clouds: int, gs: float) -> None:
    ex, ey, ez = (int(e) for e in ext)
    if max(nb_clouds, 1) * ex * ey * ez >= 2**62:
        raise ValueError(f"coord: too many voxels of grid_size={gs} to pack (clouds x extent^3 >= 2^62)")


def _groups_torch(coord: Tensor, offsets: Tensor, gs: float) -> tuple[Tensor, ...]:
    dev = coord.device
    n = coord.shape[0]
    nb_clouds = offsets.numel() - 1
    bidx = batch_index(offsets)
    g = torch.floor(coord.double() / gs).long()
    gmin = torch.zeros(nb_clouds, 3, dtype=torch.long, device=dev)
    if n:
        big = torch.iinfo(torch.long).max
        gmin = torch.full((nb_clouds, 3), big, dtype=torch.long, device=dev)
        gmin = gmin.scatter_reduce(0, bidx[:, None].expand(-1, 3), g, "amin", include_self=True)
    rel = g - gmin[bidx] if n else g
    ext = (rel.max(0).values + 1) if n else torch.ones(3, dtype=torch.long, device=dev)
    _check_extent(ext.tolist(), nb_clouds, gs)
    ex, ey, ez = (int(e) for e in ext)
    key = ((bidx * ex + rel[:, 0]) * ey + rel[:, 1]) * ez + rel[:, 2]
    uniq, inverse, counts = torch.unique(key, sorted=True, return_inverse=True, return_counts=True)
    grid = torch.stack([(uniq // (ey * ez)) % ex, (uniq // ez) % ey, uniq % ez], 1).to(torch.int32)
    batch = uniq // (ex * ey * ez)
    vstart = offsets_from_counts(counts, device=counts.device)
    members = torch.sort(inverse, stable=True).indices
    return grid, batch, inverse, counts, vstart, members


def _groups(coord: Any, grid_size: Any, offsets: Any, backend: str) -> tuple[tuple[Tensor, ...], bool]:
    coord, was_np = as_tensor(coord, "coord")
    be = check_backend(backend, coord)
    coord = check_points(coord, "coord", finite=be != "numba")  # numba checks finiteness itself
    gs = _check_grid_size(grid_size)
    offsets = check_offsets(offsets, coord.shape[0], "offsets", device=coord.device)
    fn = _groups_numba if be == "numba" else _groups_torch
    return fn(coord, offsets.cpu() if be == "numba" else offsets, gs), was_np


def voxelize(
    coord: Tensor | np.ndarray, grid_size: float, offsets: Tensor | None = None, *, backend: str = "auto"
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Group packed points into voxels of edge ``grid_size`` (one set of voxels per cloud).

    Args:
        coord: ``(N, 3)`` float point coordinates.
        grid_size: voxel edge length (> 0).
        offsets: ``(B+1,)`` int packing of the clouds; ``None`` means one cloud.
        backend: ``"auto"`` (numba on CPU, torch elsewhere), ``"numba"`` or ``"torch"``.

    Returns:
        ``grid_coord (M, 3) int32`` voxel indices relative to each cloud's minimum (so >= 0,
        Pointcept's ``floor(coord / grid) - min``), ``batch (M,) int64`` cloud of each voxel
        (non-decreasing), ``inverse (N,) int64`` voxel of each point, ``counts (M,) int64``.
        Numpy input gives numpy output.
    """
    (grid, batch, inverse, counts, _, _), was_np = _groups(coord, grid_size, offsets, backend)
    out = (grid, batch, inverse, counts)
    return tuple(t.numpy() for t in out) if was_np else out  # type: ignore[return-value]


def grid_sample(
    coord: Tensor | np.ndarray,
    grid_size: float,
    offsets: Tensor | None = None,
    mode: str = "train",
    generator: torch.Generator | None = None,
    *,
    repeat: bool = True,
    backend: str = "auto",
) -> tuple[Any, Any]:
    """Pointcept ``GridSample``: keep one point per voxel (train) or split into fragments (test).

    Voxels are those of :func:`voxelize` (same numbering ``v = 0..M-1``).

    * ``mode="train"``: returns ``(keep_idx (M,), inverse (N,))``. ``keep_idx[v]`` is a point of
      voxel ``v`` drawn uniformly at random (Pointcept draws ``randint(0, max_count) % count``,
      which is slightly biased; we draw exactly uniformly) and ``inverse[i]`` is the voxel of
      point ``i``, so ``keep_idx[inverse]`` maps every point to its kept representative and a
      prediction ``p (M, ...)`` on the kept points is scattered back with ``p[inverse]``.
    * ``mode="test"``: returns ``(fragments, inverse)`` with ``C = max(count_v)`` fragments.
      With ``repeat=True`` (Pointcept's rule) fragment ``i`` is ``(M,)``: for every voxel ``v``
      it holds its member number ``i mod count_v`` (members in increasing index order), so
      every fragment covers the whole scene, ``fragment[inverse]`` works for every fragment,
      and member ``r`` of voxel ``v`` appears first in fragment ``r``: the fragments together
      cover every point, and the *first appearances* cover every point exactly once. With
      ``repeat=False`` fragment ``i`` holds member ``i`` of only the voxels with more than ``i``
      points, so the fragments partition the points (every point exactly once).

    All indices are global packed row indices (int64). ``generator`` is a ``torch.Generator``
    (CPU) for the random draw in train mode. Numpy input gives numpy output.
    """
    if mode not in ("train", "test"):
        raise ValueError(f"mode: expected 'train' or 'test', got {mode!r}")
    (_, _, inverse, counts, vstart, members), was_np = _groups(coord, grid_size, offsets, backend)
    dev = inverse.device
    m = counts.numel()
    if mode == "train":
        u = torch.rand(m, generator=generator, dtype=torch.float64)
        if dev.type == "cpu":
            with numba_threads(5.0 * m):
                keep = torch.from_numpy(
                    pick_members(vstart.numpy(), counts.numpy(), members.numpy(), u.numpy())
                )
        else:
            pick = torch.minimum((u.to(dev) * counts).long(), counts - 1)
            keep = members[vstart[:-1] + pick]
        return (keep.numpy(), inverse.numpy()) if was_np else (keep, inverse)
    frags = []
    cmax = int(counts.max()) if m else 0
    start = vstart[:-1]
    for i in range(cmax):
        if repeat:
            frags.append(members[start + torch.remainder(torch.tensor(i, device=dev), counts)])
        else:
            sel = counts > i
            frags.append(members[start[sel] + i])
    if was_np:
        return [f.numpy() for f in frags], inverse.numpy()
    return frags, inverse
