"""The one batch type of pc3d: point clouds packed by offsets, never padded.

Every datamodule yields a :class:`PointBatch`, every model and kernel consumes one (or its
``coord``/``feat``/``offsets`` tensors). Clouds are concatenated along the first axis;
``offsets (B+1,)`` starts at 0 and ends at ``N``, so cloud ``i`` owns rows
``offsets[i]:offsets[i+1]``. Boxes are packed the same way with ``box_offsets (B+1,)``, and the
original (full-resolution) points of voxelized clouds with ``origin_offsets (B+1,)``.

Index convention: every index stored in a batch is **global**, a row of the packed tensor it points
into (``point["box_index"]`` into ``boxes``, ``origin["inverse"]`` into the rows of ``coord``), so
it stays valid when clouds are merged and needs no per-cloud offset to use.

Box convention (shared by ScanNet and KITTI, OpenPCDet style): ``(M, 7)`` rows
``[x, y, z, dx, dy, dz, yaw]`` with ``(x, y, z)`` the box centre, ``(dx, dy, dz)`` the full
sizes along the box's own x/y/z axes, and ``yaw`` the rotation about +z (0 for ScanNet's
axis-aligned boxes).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pc3d.kernels.packing import batch_index, check_offsets, offsets_from_counts

__all__ = ["MissingField", "PointBatch", "batch_index", "check_offsets", "offsets_from_counts"]


class MissingField(ValueError):
    """A batch lacks a field that a loss or a metric needs (the message names it), e.g. the vote targets
    of a split prepared without them. Evaluation catches it to score such splits with metrics alone."""


def _as_tensor(x: Any) -> Tensor:
    return torch.from_numpy(np.ascontiguousarray(x)) if isinstance(x, np.ndarray) else torch.as_tensor(x)


@dataclass
class PointBatch:
    """A batch of ``B`` point clouds packed along the first axis.

    Attributes:
        coord: ``(N, 3)`` float32 point coordinates.
        feat: ``(N, C)`` float32 point features (model input).
        offsets: ``(B+1,)`` int64, ``offsets[0] == 0``, ``offsets[-1] == N``.
        point: extra per-point tensors, each ``(N, ...)`` (e.g. ``segment``, ``instance``,
            ``grid_coord``, ``vote_target``).
        boxes: ``(M, 7)`` float32 boxes ``[x, y, z, dx, dy, dz, yaw]``, or ``None``.
        box_labels: ``(M,)`` int64 class indices, or ``None``.
        box_offsets: ``(B+1,)`` int64 packing of ``boxes``, or ``None``.
        box: extra per-box tensors, each ``(M, ...)``.
        cloud: per-cloud tensors, each ``(B, ...)`` (e.g. ``axis_align``).
        origin: per-original-point tensors of the clouds before voxelization, each ``(R, ...)``:
            ``coord (R, 3)`` float32, ``color (R, 3)`` uint8, ``segment (R,)`` int64 and ``inverse (R,)``
            int64, the row of ``coord`` (global) whose voxel holds each original point.
        origin_offsets: ``(B+1,)`` int64 packing of ``origin`` (clouds may own no rows), or ``None``.
        meta: one dict of non-tensor information per cloud (ids, source paths, scalars).
    """

    coord: Tensor
    feat: Tensor
    offsets: Tensor
    point: dict[str, Tensor] = field(default_factory=dict)
    boxes: Tensor | None = None
    box_labels: Tensor | None = None
    box_offsets: Tensor | None = None
    box: dict[str, Tensor] = field(default_factory=dict)
    cloud: dict[str, Tensor] = field(default_factory=dict)
    origin: dict[str, Tensor] = field(default_factory=dict)
    origin_offsets: Tensor | None = None
    meta: list[dict[str, Any]] = field(default_factory=list)

    @property
    def num_clouds(self) -> int:
        return self.offsets.numel() - 1

    @property
    def batch_index(self) -> Tensor:
        """``(N,)`` cloud index of every point."""
        return batch_index(self.offsets)

    def counts(self) -> list[int]:
        """Points per cloud, ``B`` ints."""
        return (self.offsets[1:] - self.offsets[:-1]).tolist()

    def split(self, x: Tensor) -> list[Tensor]:
        """Split a packed per-point tensor ``(N, ...)`` into ``B`` per-cloud tensors."""
        return list(torch.split(x, self.counts()))

    def split_boxes(self, x: Tensor) -> list[Tensor]:
        """Split a packed per-box tensor ``(M, ...)`` into ``B`` per-cloud tensors."""
        if self.box_offsets is None:
            raise ValueError("box_offsets: this batch has no boxes")
        return list(torch.split(x, (self.box_offsets[1:] - self.box_offsets[:-1]).tolist()))

    def split_origin(self, x: Tensor) -> list[Tensor]:
        """Split a packed per-original-point tensor ``(R, ...)`` into ``B`` per-cloud tensors."""
        if self.origin_offsets is None:
            raise ValueError("origin_offsets: this batch has no original points")
        return list(torch.split(x, (self.origin_offsets[1:] - self.origin_offsets[:-1]).tolist()))

    def to(self, device: torch.device | str, non_blocking: bool = False) -> PointBatch:
        def move(v: Any) -> Any:
            if isinstance(v, Tensor):
                return v.to(device, non_blocking=non_blocking)
            if isinstance(v, dict):
                return {k: move(x) for k, x in v.items()}
            return v

        return PointBatch(**{f.name: move(getattr(self, f.name)) for f in fields(self)})

    def __len__(self) -> int:
        return self.num_clouds

    @classmethod
    def collate(cls, samples: Sequence[Mapping[str, Any]]) -> PointBatch:
        """Pack per-cloud samples into one batch.

        Each sample is a mapping with ``coord (n, 3)``, ``feat (n, C)`` and optionally
        ``point`` (dict of ``(n, ...)``), ``boxes (m, 7)``, ``box_labels (m,)``, ``box``
        (dict of ``(m, ...)``), ``cloud`` (dict of per-cloud arrays), ``origin`` (dict of ``(r, ...)``,
        the same keys in every sample; ``r`` may be 0) and ``meta`` (dict).
        Numpy arrays are converted to tensors. Usable directly as a DataLoader ``collate_fn``.
        Indices follow one convention, global: a sample's ``point["box_index"]`` (index into its own
        boxes, ``-1`` for none) becomes an index into the batch's ``boxes``, and its
        ``origin["inverse"]`` (row of its own points) a row of the batch's ``coord``.
        """
        if len(samples) == 0:
            raise ValueError("samples: cannot collate an empty list")
        coords = [_as_tensor(s["coord"]).float() for s in samples]
        feats = [_as_tensor(s["feat"]).float() for s in samples]
        for i, (c, f) in enumerate(zip(coords, feats)):
            if c.dim() != 2 or c.shape[1] != 3:
                raise ValueError(f"samples[{i}]['coord']: expected (n, 3), got {tuple(c.shape)}")
            if f.dim() != 2 or f.shape[0] != c.shape[0]:
                raise ValueError(f"samples[{i}]['feat']: expected ({c.shape[0]}, C), got {tuple(f.shape)}")
        point_keys = set(samples[0].get("point", {}))
        box_keys = set(samples[0].get("box", {}))
        cloud_keys = set(samples[0].get("cloud", {}))
        origin_keys = set(samples[0].get("origin", {}))
        for i, s in enumerate(samples):
            checks = (
                ("point", point_keys),
                ("box", box_keys),
                ("cloud", cloud_keys),
                ("origin", origin_keys),
            )
            for attr, keys in checks:
                if set(s.get(attr, {})) != keys:
                    raise ValueError(
                        f"samples[{i}]['{attr}']: keys {sorted(s.get(attr, {}))} differ from {sorted(keys)}"
                    )
        point = {k: torch.cat([_as_tensor(s["point"][k]) for s in samples]) for k in sorted(point_keys)}
        cloud = {k: torch.stack([_as_tensor(s["cloud"][k]) for s in samples]) for k in sorted(cloud_keys)}
        boxes = box_labels = box_offsets = None
        box: dict[str, Tensor] = {}
        if "boxes" in samples[0]:
            bl = [_as_tensor(s["boxes"]).float().reshape(-1, 7) for s in samples]
            boxes = torch.cat(bl)
            box_offsets = offsets_from_counts([b.shape[0] for b in bl])
            if "box_labels" in samples[0]:
                box_labels = torch.cat([_as_tensor(s["box_labels"]).long().reshape(-1) for s in samples])
            box = {k: torch.cat([_as_tensor(s["box"][k]) for s in samples]) for k in sorted(box_keys)}
            if "box_index" in point:
                local = point["box_index"].long()
                first_box = box_offsets[:-1].repeat_interleave(torch.tensor([c.shape[0] for c in coords]))
                point["box_index"] = torch.where(local < 0, local, local + first_box)
        offsets = offsets_from_counts([c.shape[0] for c in coords])
        origin, origin_offsets = _collate_origin(samples, sorted(origin_keys), offsets)
        return cls(
            coord=torch.cat(coords),
            feat=torch.cat(feats),
            offsets=offsets,
            point=point,
            boxes=boxes,
            box_labels=box_labels,
            box_offsets=box_offsets,
            box=box,
            cloud=cloud,
            origin=origin,
            origin_offsets=origin_offsets,
            meta=[dict(s.get("meta", {})) for s in samples],
        )


def _collate_origin(
    samples: Sequence[Mapping[str, Any]], keys: list[str], offsets: Tensor
) -> tuple[dict[str, Tensor], Tensor | None]:
    """The packed ``origin`` tensors of ``samples`` and their ``origin_offsets (B+1,)`` (``None``
    without origin keys); ``inverse`` is made global with the clouds' point ``offsets (B+1,)``."""
    if not keys:
        return {}, None
    parts = {k: [_as_tensor(s["origin"][k]) for s in samples] for k in keys}
    counts = [len(x) for x in parts[keys[0]]]
    for k in keys:
        if [len(x) for x in parts[k]] != counts:
            raise ValueError(
                f"samples[*]['origin']['{k}']: expected {counts} rows per sample like '{keys[0]}'"
            )
    if "inverse" in parts:
        parts["inverse"] = [x.long() + offsets[i] for i, x in enumerate(parts["inverse"])]
    return {k: torch.cat(v) for k, v in parts.items()}, offsets_from_counts(counts)
