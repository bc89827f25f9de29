"""Serialized point U-Net shared by MEEPO and the PTv3 baseline (Pointcept PTv3 m1 layout).

Points are voxelized (duplicates in a voxel are averaged), a sparse-conv stem embeds them, an
encoder of ``len(enc_depths)`` stages (grid pooling between stages) and a decoder of
``len(dec_depths)`` stages (grid unpooling with skip connections) run the injected mixer block,
and a linear head gives per-point logits (the :class:`~pc3d.models.segmenter.Segmenter` interface:
``forward(batch)``, ``loss(out, batch)``, ``predict(out, batch)``). Every level is serialized along the orders in
``orders`` (shuffled per forward in training when ``shuffle_orders``); block ``i`` of a stage
uses order ``i mod K``. Clouds are packed by offsets and never mixed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from pc3d.data.batch import PointBatch
from pc3d.kernels.packing import batch_index, check_offsets
from pc3d.kernels.sparse import spconv
from pc3d.models.blocks.common import linear_bn_gelu, make_norm
from pc3d.models.losses.segmentation import SegmentationLoss
from pc3d.models.point import ORDERS, SerializedPoints, build_points
from pc3d.models.resolve import resolve_class
from pc3d.models.segmenter import Segmenter

_BITS = 16  # per-axis bits of the voxel keys and of the serialization codes


def _voxel_key(batch: Tensor, grid: Tensor) -> Tensor:
    return batch << (3 * _BITS) | grid[:, 0] << (2 * _BITS) | grid[:, 1] << _BITS | grid[:, 2]


def _sparse_tensor(feat: Tensor, point: SerializedPoints) -> Any:
    indices = torch.cat([point.batch[:, None], point.grid_coord], 1).int()
    shape = (point.grid_coord.amax(0) + 1).clamp_min(1).tolist() if point.num_points else [1, 1, 1]
    return spconv.SparseConvTensor(feat, indices, shape, point.num_clouds)


class GridPooling(nn.Module):
    """Merge the voxels of one octree cell (``grid_coord >> log2(stride)``); features ``Linear -> max -> BN -> GELU``.

    ``forward(feat (N, Cin), point) -> (feat (M, Cout), coarse point, cluster (N,))``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 2) -> None:
        super().__init__()
        if stride < 2 or stride & (stride - 1):
            raise ValueError(f"stride: expected a power of two >= 2, got {stride}")
        self.shift = stride.bit_length() - 1
        self.proj = nn.Linear(in_channels, out_channels)
        self.norm = make_norm("batch", out_channels)
        self.act = nn.GELU()

    def forward(
        self, feat: Tensor, point: SerializedPoints, shuffle: bool, depth: int
    ) -> tuple[Tensor, SerializedPoints, Tensor]:
        grid = point.grid_coord >> self.shift
        _, cluster, counts = torch.unique(
            _voxel_key(point.batch, grid), sorted=True, return_inverse=True, return_counts=True
        )
        m = counts.numel()
        coarse_grid = torch.zeros(m, 3, dtype=grid.dtype, device=grid.device).index_copy_(0, cluster, grid)
        coarse_batch = torch.zeros(m, dtype=point.batch.dtype, device=grid.device).index_copy_(
            0, cluster, point.batch
        )
        coord = torch.zeros(m, 3, dtype=point.coord.dtype, device=grid.device).index_add_(
            0, cluster, point.coord
        )
        coord = coord / counts[:, None].to(coord.dtype)
        x = self.proj(feat)
        x = x.new_zeros(m, x.shape[1]).scatter_reduce(
            0, cluster[:, None].expand(-1, x.shape[1]), x, "amax", include_self=False
        )
        coarse = build_points(
            coord, coarse_grid, coarse_batch, point.num_clouds, point.orders, shuffle, depth
        )
        x = self.act(self.norm(x))
        coarse.sparse = _sparse_tensor(x, coarse)
        return x, coarse, cluster


class GridUnpooling(nn.Module):
    """``fine = LBG(skip) + LBG(coarse)[cluster]`` with LBG = Linear + BatchNorm + GELU."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.proj = linear_bn_gelu(in_channels, out_channels)
        self.proj_skip = linear_bn_gelu(skip_channels, out_channels)

    def forward(self, coarse: Tensor, skip: Tensor, cluster: Tensor) -> Tensor:
        return self.proj_skip(skip) + self.proj(coarse).index_select(0, cluster)


def _layer_drop_paths(drop_path: float, depths: Sequence[int]) -> list[list[float]]:
    rates = torch.linspace(0, drop_path, max(sum(depths), 1)).tolist()
    out, i = [], 0
    for d in depths:
        out.append(rates[i : i + d])
        i += d
    return out


class SerializedUNet(Segmenter, nn.Module):
    """Serialized point U-Net with an injected mixer block.

    Args:
        block: mixer block class/factory (or dotted path). Called as
            ``block(channels=C, drop_path=p, indice_key=key, **block_args, **stage_args)`` and used as
            ``block(feat (N, C), point, order_index) -> (N, C)``.
        in_channels: input feature channels (6 = color + normal).
        num_classes: logits per point; ``0`` returns the decoder features ``(N, dec_channels[0])``.
        grid_size: voxel size used when ``grid_coord`` is not given.
        orders: serialization orders (subset of ``z, z-trans, hilbert, hilbert-trans``).
        shuffle_orders: permute the orders at every forward and pooling, in training mode only.
        strides: pooling stride between consecutive encoder stages (powers of two).
        enc_depths, enc_channels, dec_depths, dec_channels: stage sizes; ``len(dec) == len(enc) - 1``.
        block_args: keyword arguments for every block.
        enc_block_args, dec_block_args: per-stage keyword arguments (e.g. ``num_heads``).
        drop_path: final stochastic-depth rate, ramped linearly over the encoder (and decoder) blocks.
        stem_kernel: kernel of the ``SubMConv3d`` stem.
        serialization_depth: bits per axis of the serialization codes.
        criterion: the loss of :meth:`loss` (default: :class:`SegmentationLoss` with CE and Lovász
            weights 1, labels -1 ignored).
    """

    def __init__(
        self,
        block: Callable[..., nn.Module] | str,
        in_channels: int = 6,
        num_classes: int = 20,
        grid_size: float = 0.02,
        orders: Sequence[str] = ORDERS,
        shuffle_orders: bool = True,
        strides: Sequence[int] = (2, 2, 2, 2),
        enc_depths: Sequence[int] = (2, 2, 2, 6, 2),
        enc_channels: Sequence[int] = (32, 64, 128, 256, 512),
        dec_depths: Sequence[int] = (2, 2, 2, 2),
        dec_channels: Sequence[int] = (64, 64, 128, 256),
        block_args: Mapping[str, Any] | None = None,
        enc_block_args: Sequence[Mapping[str, Any]] | None = None,
        dec_block_args: Sequence[Mapping[str, Any]] | None = None,
        drop_path: float = 0.3,
        stem_kernel: int = 5,
        serialization_depth: int = _BITS,
        criterion: SegmentationLoss | None = None,
    ) -> None:
        super().__init__()
        block = resolve_class(block, "block")
        ns = len(enc_depths)
        if ns < 1 or len(enc_channels) != ns:
            raise ValueError(
                f"enc_channels: expected {ns} widths to match enc_depths, got {list(enc_channels)}"
            )
        if len(dec_depths) != ns - 1 or len(dec_channels) != ns - 1:
            raise ValueError(
                f"dec_depths/dec_channels: expected {ns - 1} entries each for {ns} encoder stages"
            )
        if len(strides) != ns - 1:
            raise ValueError(f"strides: expected {ns - 1} entries, got {list(strides)}")
        if not orders or any(o not in ORDERS for o in orders):
            raise ValueError(f"orders: expected names from {ORDERS}, got {list(orders)}")
        if grid_size <= 0:
            raise ValueError(f"grid_size: expected > 0, got {grid_size}")
        if not 1 <= serialization_depth <= _BITS:
            raise ValueError(f"serialization_depth: expected 1..{_BITS}, got {serialization_depth}")
        enc_block_args = list(enc_block_args) if enc_block_args is not None else [{}] * ns
        dec_block_args = list(dec_block_args) if dec_block_args is not None else [{}] * (ns - 1)
        if len(enc_block_args) != ns or len(dec_block_args) != ns - 1:
            raise ValueError("enc_block_args/dec_block_args: expected one mapping per stage")
        block_args = dict(block_args or {})
        self.in_channels, self.num_classes, self.grid_size = in_channels, num_classes, float(grid_size)
        self.orders, self.shuffle_orders, self.depth = tuple(orders), shuffle_orders, serialization_depth
        self.stem = spconv.SparseSequential(
            spconv.SubMConv3d(in_channels, enc_channels[0], stem_kernel, bias=False, indice_key="stem"),
            make_norm("batch", enc_channels[0]),
            nn.GELU(),
        )
        enc_dp = _layer_drop_paths(drop_path, enc_depths)
        dec_dp = _layer_drop_paths(drop_path, dec_depths)
        self.pools = nn.ModuleList()
        self.enc = nn.ModuleList()
        for s in range(ns):
            if s > 0:
                self.pools.append(GridPooling(enc_channels[s - 1], enc_channels[s], strides[s - 1]))
            args = {**block_args, **dict(enc_block_args[s])}
            self.enc.append(
                nn.ModuleList(
                    block(channels=enc_channels[s], drop_path=enc_dp[s][i], indice_key=f"subm{s}", **args)
                    for i in range(enc_depths[s])
                )
            )
        self.unpools = nn.ModuleList()
        self.dec = nn.ModuleList()
        up_channels = list(dec_channels) + [enc_channels[-1]]
        for s in range(ns - 1):
            self.unpools.append(GridUnpooling(up_channels[s + 1], enc_channels[s], dec_channels[s]))
            args = {**block_args, **dict(dec_block_args[s])}
            rates = dec_dp[s][::-1]
            self.dec.append(
                nn.ModuleList(
                    block(channels=dec_channels[s], drop_path=rates[i], indice_key=f"subm{s}", **args)
                    for i in range(dec_depths[s])
                )
            )
        out_channels = dec_channels[0] if ns > 1 else enc_channels[0]
        self.out_channels = out_channels
        self.head = nn.Linear(out_channels, num_classes) if num_classes > 0 else nn.Identity()
        self.criterion = criterion if criterion is not None else SegmentationLoss()

    def voxelize(
        self, coord: Tensor, offsets: Tensor, grid_coord: Tensor | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``(grid (M, 3), batch (M,), inverse (N,))``: unique voxels sorted by (cloud, key)."""
        batch = batch_index(offsets)
        if grid_coord is None:
            g = torch.floor(coord / self.grid_size).long()
            lo = torch.full((offsets.numel() - 1, 3), torch.iinfo(torch.long).max, device=g.device)
            lo = lo.scatter_reduce(0, batch[:, None].expand(-1, 3), g, "amin", include_self=True)
            g = g - lo[batch]
        else:
            if grid_coord.shape != coord.shape:
                raise ValueError(
                    f"grid_coord: expected shape {tuple(coord.shape)}, got {tuple(grid_coord.shape)}"
                )
            g = grid_coord.long()
            if g.numel() and int(g.min()) < 0:
                raise ValueError("grid_coord: expected non-negative voxel indices")
        if g.numel() and int(g.max()) >= (1 << self.depth):
            raise ValueError(
                f"coord: the clouds span more than 2**{self.depth} voxels of {self.grid_size} along an axis"
            )
        key, inverse = torch.unique(_voxel_key(batch, g), sorted=True, return_inverse=True)
        mask = (1 << _BITS) - 1
        grid = torch.stack([key >> (2 * _BITS) & mask, key >> _BITS & mask, key & mask], 1)
        return grid, key >> (3 * _BITS), inverse

    def forward(self, batch: PointBatch) -> Tensor:
        """Per-point logits ``(N, num_classes)`` of ``batch.coord (N, 3)``, ``batch.feat (N, in_channels)``,
        ``batch.offsets (B+1,)``.

        ``batch.point["grid_coord"] (N, 3)`` int (optional) overrides ``floor(coord / grid_size) - min``;
        points that share a voxel share its prediction.
        """
        coord, feat, grid_coord = batch.coord, batch.feat, batch.point.get("grid_coord")
        if coord.dim() != 2 or coord.shape[1] != 3:
            raise ValueError(f"coord: expected (N, 3), got {tuple(coord.shape)}")
        if feat.dim() != 2 or feat.shape != (coord.shape[0], self.in_channels):
            raise ValueError(
                f"feat: expected ({coord.shape[0]}, {self.in_channels}), got {tuple(feat.shape)}"
            )
        offsets = check_offsets(batch.offsets, coord.shape[0], device=coord.device)
        grid, batch, inverse = self.voxelize(coord, offsets, grid_coord)
        m = grid.shape[0]
        counts = torch.bincount(inverse, minlength=m).to(feat.dtype)[:, None]
        vfeat = feat.new_zeros(m, feat.shape[1]).index_add_(0, inverse, feat) / counts
        vcoord = coord.new_zeros(m, 3).index_add_(0, inverse, coord) / counts.to(coord.dtype)
        shuffle = self.shuffle_orders and self.training
        point = build_points(vcoord, grid, batch, offsets.numel() - 1, self.orders, shuffle, self.depth)
        point.sparse = _sparse_tensor(vfeat, point)
        x = self.stem(point.sparse).features
        point.sparse = point.sparse.replace_feature(x)
        skips: list[tuple[Tensor, SerializedPoints, Tensor | None]] = []
        cluster: Tensor | None = None
        for s, stage in enumerate(self.enc):
            if s > 0:
                skips.append((x, point, cluster))
                x, point, cluster = self.pools[s - 1](x, point, shuffle, self.depth)
            for i, blk in enumerate(stage):
                x = blk(x, point, i % len(point.orders))
        for s in reversed(range(len(self.dec))):
            skip, fine, fine_cluster = skips.pop()
            x = self.unpools[s](x, skip, cluster)
            point, cluster = fine, fine_cluster
            for i, blk in enumerate(self.dec[s]):
                x = blk(x, point, i % len(point.orders))
        return self.head(x).index_select(0, inverse)
