"""Packed voxel structure used inside the serialized backbone (not a data batch type).

One :class:`SerializedPoints` holds one resolution level of the U-Net: ``N`` unique voxels of
``B`` clouds, stored cloud-contiguous (sorted by cloud index), together with their
serialization codes, orders and inverses, and the sparse-conv tensor of the level (whose
rulebook cache is shared by every block of the level).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from pc3d.kernels.packing import offsets_from_counts
from pc3d.kernels.points import ORDERS, serialization_order, serialize

__all__ = ["ORDERS", "SerializedPoints", "build_points", "serialize_levels"]


@dataclass
class SerializedPoints:
    """One level of packed voxels.

    Attributes:
        coord: ``(N, 3)`` float voxel centroids.
        grid_coord: ``(N, 3)`` int64 voxel indices, ``>= 0``, unique within a cloud.
        batch: ``(N,)`` int64 cloud index, non-decreasing.
        offsets: ``(B+1,)`` int64 packing of the rows by cloud.
        orders: names of the serialization orders, ``K`` of them, in use order.
        code: ``(K, N)`` int64 serialization codes (cloud index in the high bits).
        order: ``(K, N)`` int64; ``order[k]`` lists the rows sorted along curve ``k``.
        inverse: ``(K, N)`` int64; ``inverse[k][order[k]] = arange(N)``.
        sparse: the level's ``spconv.SparseConvTensor`` (indices ``[batch, x, y, z]``).
        cache: per-level memo for derived index tensors (direction maps, attention patches).
    """

    coord: Tensor
    grid_coord: Tensor
    batch: Tensor
    offsets: Tensor
    orders: tuple[str, ...]
    code: Tensor
    order: Tensor
    inverse: Tensor
    sparse: Any = None
    cache: dict[Any, Any] = field(default_factory=dict)

    @property
    def num_points(self) -> int:
        return self.coord.shape[0]

    def sparse_conv(self, conv: Any, feat: Tensor) -> Tensor:
        """A spconv module on this level's voxels with features ``feat (N, C_in)`` -> ``(N, C_out)``.

        spconv stores the neighbour pairs a conv builds on the conv's output tensor only (a copy of the
        input's cache); they are copied back into the level's cache here, so every other conv of the level
        with the same ``indice_key`` reuses them instead of building them again.
        """
        out = conv(self.sparse.replace_feature(feat))
        self.sparse.indice_dict.update(out.indice_dict)
        return out.features

    @property
    def num_clouds(self) -> int:
        return self.offsets.numel() - 1


def serialize_levels(
    grid_coord: Tensor, batch: Tensor, orders: Sequence[str], depth: int = 16
) -> tuple[Tensor, Tensor, Tensor]:
    """Codes, orders and inverses ``(K, N)`` for ``grid_coord (N, 3)``, ``batch (N,)`` and ``K`` order names."""
    for o in orders:
        if o not in ORDERS:
            raise ValueError(f"order: expected names from {ORDERS}, got {o!r}")
    if grid_coord.numel() and int(grid_coord.max()) >= (1 << depth):
        raise ValueError(f"grid_coord: values must be < 2**{depth} for serialization depth {depth}")
    codes, ords, invs = [], [], []
    for o in orders:
        c = serialize(grid_coord, batch, o, depth=depth)
        od, inv = serialization_order(c)
        codes.append(c)
        ords.append(od.long())
        invs.append(inv.long())
    return torch.stack(codes), torch.stack(ords), torch.stack(invs)


def build_points(
    coord: Tensor,
    grid_coord: Tensor,
    batch: Tensor,
    num_clouds: int,
    orders: Sequence[str],
    shuffle: bool = False,
    depth: int = 16,
) -> SerializedPoints:
    """Serialize a cloud-contiguous level; ``shuffle`` permutes the order list (PTv3 shuffle_orders)."""
    orders = tuple(orders)
    if shuffle:
        perm = torch.randperm(len(orders)).tolist()
        orders = tuple(orders[i] for i in perm)
    code, order, inverse = serialize_levels(grid_coord, batch, orders, depth)
    counts = torch.bincount(batch, minlength=num_clouds)
    offsets = offsets_from_counts(counts, device=counts.device)
    return SerializedPoints(coord, grid_coord, batch, offsets, orders, code, order, inverse)
