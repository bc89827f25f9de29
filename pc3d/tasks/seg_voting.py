"""Test-time voting of a segmenter: class probabilities summed over views and GridSample fragments.

The network is only called as ``model(batch)`` and ``model.predict(out, batch)``
(:class:`~pc3d.models.segmenter.Segmenter`); a view is a rotation about +z, a scale and an x-mirror
of the coordinates, after which the network voxelizes the transformed points itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from pc3d.data.batch import PointBatch, offsets_from_counts

#: a test-time view: ``(rotate_z radians, scale, flip)``
View = tuple[float, float, bool]
IDENTITY: View = (0.0, 1.0, False)


def view_transform(coord: Tensor, rotate_z: float = 0.0, scale: float = 1.0, flip: bool = False) -> Tensor:
    """Test-time view of ``coord (N, 3)``: rotation by ``rotate_z`` radians about +z, scaling, x-mirror."""
    c, s = math.cos(rotate_z), math.sin(rotate_z)
    rot = coord.new_tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    out = coord @ rot.T * scale
    if flip:
        out = out * out.new_tensor([-1.0, 1.0, 1.0])
    return out


def tta_views(rotations: Sequence[float], scales: Sequence[float], flip: bool) -> list[View]:
    """Every rotation (in multiples of pi) at every scale, plus one x-mirrored view when ``flip``."""
    views = [(math.pi * r, float(s), False) for s in scales for r in rotations]
    if flip:
        views.append((0.0, 1.0, True))
    return views


def view_batch(batch: PointBatch, view: View) -> PointBatch:
    """``batch`` itself for the identity view, else its points and features seen from ``view``
    without ``grid_coord`` (the network voxelizes the transformed coordinates)."""
    if view == IDENTITY:
        return batch
    return PointBatch(coord=view_transform(batch.coord, *view), feat=batch.feat, offsets=batch.offsets)


def select_clouds(batch: PointBatch, clouds: Sequence[int]) -> PointBatch:
    """The network input of ``clouds`` of ``batch``: ``coord``, ``feat`` and ``point["grid_coord"]``."""
    counts = batch.counts()

    def take(x: Tensor) -> Tensor:
        parts = batch.split(x)
        return torch.cat([parts[i] for i in clouds])

    point = {"grid_coord": take(batch.point["grid_coord"])} if "grid_coord" in batch.point else {}
    offsets = offsets_from_counts([counts[i] for i in clouds], device=batch.coord.device)
    return PointBatch(coord=take(batch.coord), feat=take(batch.feat), offsets=offsets, point=point)


def cloud_probs(
    model: nn.Module, batch: PointBatch, views: Sequence[View], clouds_per_forward: int
) -> list[Tensor]:
    """Class probabilities ``(n_i, C)`` of every cloud, summed over ``views``; ``clouds_per_forward``
    clouds share a forward pass."""
    probs: list[Tensor] = []
    for start in range(0, batch.num_clouds, clouds_per_forward):
        sub = select_clouds(batch, range(start, min(start + clouds_per_forward, batch.num_clouds)))
        acc: list[Tensor] | None = None
        for view in views:
            seen = view_batch(sub, view)
            view_probs = [r["probs"] for r in model.predict(model(seen), seen)]
            acc = view_probs if acc is None else [a + p for a, p in zip(acc, view_probs)]
        probs.extend(acc)
    return probs


def cloud_origin(batch: PointBatch, i: int) -> dict[str, Tensor]:
    """The ``origin`` tensors of cloud ``i``, ``inverse`` as rows of that cloud."""
    if batch.origin_offsets is None:
        return {}
    out = {k: batch.split_origin(v)[i] for k, v in batch.origin.items()}
    if "inverse" in out:
        out["inverse"] = out["inverse"] - batch.offsets[i]
    return out


def vote(
    model: nn.Module,
    batch: PointBatch,
    views: Sequence[View],
    clouds_per_forward: int,
    num_classes: int,
    ignore_index: int,
) -> list[dict[str, Any]]:
    """Scene-level class probabilities, summed over test fragments and views.

    Clouds with ``point["index"]`` (each row's original point id in its scene) and
    ``meta["num_points"]`` are fragments of the scene named by ``meta["scene_id"]``; other clouds
    are scenes of their own, mapped to full resolution through ``origin["inverse"]`` when present.

    Returns one dict per scene: ``meta`` (of its first cloud), ``probs (N_orig, C)``, ``segment
    (N_orig,)`` (``None`` without labels) and ``origin`` (the first cloud's ``coord``/``color``/...
    of the original points, possibly empty).
    """
    metas = batch.meta or [{} for _ in range(batch.num_clouds)]
    has_index = "index" in batch.point
    index = batch.split(batch.point["index"]) if has_index else None
    target = batch.split(batch.point["segment"]) if "segment" in batch.point else None
    groups: dict[Any, list[int]] = {}
    for i, m in enumerate(metas):
        key = m.get("scene_id", i) if has_index and "num_points" in m else ("cloud", i)
        groups.setdefault(key, []).append(i)
    probs = cloud_probs(model, batch, views, clouds_per_forward)
    device = batch.coord.device
    out = []
    for key, members in groups.items():
        first = members[0]
        origin = cloud_origin(batch, first)
        scene: dict[str, Any] = {"meta": metas[first], "origin": origin}
        if isinstance(key, tuple) and key[0] == "cloud":
            p, seg = probs[first], target[first] if target is not None else None
            if "inverse" in origin:
                p, seg = p[origin["inverse"]], origin.get("segment")
            out.append({**scene, "probs": p, "segment": seg})
            continue
        n = int(metas[first]["num_points"])
        total = torch.zeros(n, num_classes, device=device)
        seg = torch.full((n,), ignore_index, dtype=torch.long, device=device)
        covered = torch.zeros(n, dtype=torch.bool, device=device)
        for i in members:
            total.index_add_(0, index[i], probs[i])
            covered[index[i]] = True
            if target is not None:
                seg[index[i]] = target[i].long()
        if not bool(covered.all()):
            raise ValueError(f"test fragments of scene {key!r} do not cover all {n} points")
        out.append({**scene, "probs": total, "segment": seg if target is not None else None})
    return out
