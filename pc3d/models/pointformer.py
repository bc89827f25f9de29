"""Pointformer backbone (Pan et al., CVPR 2021) on packed point clouds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from pc3d.kernels.packing import check_offsets

from .pointformer_layers import FeaturePropagation, PointformerBlock

T = TypeVar("T")
AttentionSpec = str | type[nn.Module] | None  # an attention class or its dotted path; None: full attention


def _per_block(value: T | Sequence[T], n: int, name: str) -> list[T]:
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{name}: expected {n} values (one per block), got {len(value)}")
        return list(value)
    return [value] * n  # type: ignore[list-item]


class Pointformer(nn.Module):
    """Pointformer backbone: a stem, ``len(num_points)`` transformer set-abstraction blocks and
    PointNet++ feature propagation back to the seed level.

    Defaults are the official ScanNet configuration: 2048/1024/512/256 points, radii 0.2/0.4/0.8/1.2,
    group sizes 64/32/16/16, LT widths 64/128/256/512, GT outputs 128/256/512/512, 8 heads, 2 LT + 2 GT
    layers per block, FFN 2x, global dropout 0.2, then FP ``[512+512->256,256]`` and
    ``[256+256->256,256]`` giving 1024 seeds x 256 channels. With ``len(fp_channels) == len(num_points)``
    features are propagated back to every input point (the last FP's skip features are the stem's),
    as PointRCNN-style heads need. The input feature (height by default) is
    mapped by a ``Linear(in_channels, stem_channels)`` with no norm or activation; xyz enters only through
    position encodings.

    Per-block options accept one value or one per block: ``num_heads``, ``use_local_global`` (the
    Local-Global Transformer, off in the official release), ``refine`` (coordinate refinement, absent
    from the official release), ``linformer_ratio`` (Linformer K/V projection of the Global and
    Local-Global attention; ``cloud_points`` bounds the memory length of block 1's LGT),
    ``global_attention`` and ``global_attention_args`` (the Global Transformer's attention class or
    dotted class path and its arguments; ``None`` is full attention, e.g.
    ``pc3d.models.pointformer_layers.attention.AgentGlobalAttention`` with ``{num_agents: 64}`` for
    agent attention, whose memory is linear in the sampled points).

    ``forward(coord (N,3), feat (N,in_channels), offsets (B+1,))`` returns a dict:
    ``seed_xyz (S,3)`` (refined when refinement is on), ``seed_feat (S,C_fp)``, ``seed_offsets (B+1,)``,
    ``seed_indices (S,)`` (global rows of the input the seeds were sampled from), and per level lists
    ``sa_xyz``, ``sa_feat``, ``sa_offsets``, ``sa_indices`` (level 0 is the input).
    """

    def __init__(
        self,
        in_channels: int = 1,
        stem_channels: int = 64,
        num_points: Sequence[int] = (2048, 1024, 512, 256),
        radii: Sequence[float] = (0.2, 0.4, 0.8, 1.2),
        num_samples: Sequence[int] = (64, 32, 16, 16),
        dims: Sequence[int] = (64, 128, 256, 512),
        out_channels: Sequence[int] = (128, 256, 512, 512),
        num_heads: int | Sequence[int] = 8,
        num_local_layers: int = 2,
        num_global_layers: int = 2,
        ffn_ratio: float = 2.0,
        dropout: float = 0.0,
        global_dropout: float = 0.2,
        prenorm: bool = True,
        use_global: bool | Sequence[bool] = True,
        use_local_global: bool | Sequence[bool] = False,
        refine: bool | Sequence[bool] = False,
        linformer_ratio: int | Sequence[int] = 1,
        cloud_points: int | None = None,
        global_attention: AttentionSpec | Sequence[AttentionSpec] = None,
        global_attention_args: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        fp_channels: Sequence[Sequence[int]] = ((256, 256), (256, 256)),
    ) -> None:
        super().__init__()
        n = len(num_points)
        if n < 1:
            raise ValueError("num_points: expected at least one block")
        for name, seq in (
            ("radii", radii),
            ("num_samples", num_samples),
            ("dims", dims),
            ("out_channels", out_channels),
        ):
            if len(seq) != n:
                raise ValueError(f"{name}: expected {n} values (one per block), got {len(seq)}")
        if len(fp_channels) > n:
            raise ValueError(f"fp_channels: at most {n} feature-propagation layers for {n} blocks")
        heads = _per_block(num_heads, n, "num_heads")
        glob = _per_block(use_global, n, "use_global")
        lgt = _per_block(use_local_global, n, "use_local_global")
        ref = _per_block(refine, n, "refine")
        lin = _per_block(linformer_ratio, n, "linformer_ratio")
        attn = _per_block(global_attention, n, "global_attention")
        attn_args = _per_block(global_attention_args, n, "global_attention_args")
        self.in_channels = in_channels
        self.stem = nn.Linear(in_channels, stem_channels)
        self.blocks = nn.ModuleList()
        c = stem_channels
        mem_len = cloud_points
        for i in range(n):
            self.blocks.append(
                PointformerBlock(
                    c,
                    num_points[i],
                    radii[i],
                    num_samples[i],
                    dims[i],
                    out_channels[i],
                    heads[i],
                    num_local_layers,
                    num_global_layers,
                    ffn_ratio,
                    dropout,
                    global_dropout,
                    prenorm,
                    glob[i],
                    lgt[i],
                    ref[i],
                    lin[i],
                    mem_len,
                    attn[i],
                    attn_args[i],
                )
            )
            c, mem_len = out_channels[i], num_points[i]
        self.fps = nn.ModuleList()
        coarse = out_channels[-1]
        for j, widths in enumerate(fp_channels):
            skip = out_channels[n - 2 - j] if n - 2 - j >= 0 else stem_channels
            self.fps.append(FeaturePropagation([skip + coarse, *widths]))
            coarse = widths[-1]
        self.out_channels = coarse

    def forward(self, coord: Tensor, feat: Tensor, offsets: Tensor) -> dict[str, object]:
        if coord.dim() != 2 or coord.shape[1] != 3:
            raise ValueError(f"coord: expected (N, 3), got {tuple(coord.shape)}")
        if feat.dim() != 2 or feat.shape != (coord.shape[0], self.in_channels):
            raise ValueError(
                f"feat: expected ({coord.shape[0]}, {self.in_channels}), got {tuple(feat.shape)}"
            )
        offsets = check_offsets(offsets, coord.shape[0], device=coord.device)
        xyz, x, off = coord, self.stem(feat), offsets
        gidx = torch.arange(coord.shape[0], device=coord.device)
        sa_xyz, sa_feat, sa_off, sa_idx = [xyz], [x], [off], [gidx]
        for block in self.blocks:
            xyz, x, off, idx = block(xyz, x, off)
            gidx = gidx[idx]
            sa_xyz.append(xyz)
            sa_feat.append(x)
            sa_off.append(off)
            sa_idx.append(gidx)
        n = len(self.blocks)
        for j, fp in enumerate(self.fps):
            lvl = n - 1 - j
            x = fp(sa_xyz[lvl], sa_off[lvl], sa_feat[lvl], xyz, off, x)
            xyz, off = sa_xyz[lvl], sa_off[lvl]
        level = n - len(self.fps)
        return {
            "seed_xyz": sa_xyz[level],
            "seed_feat": x,
            "seed_offsets": sa_off[level],
            "seed_indices": sa_idx[level],
            "sa_xyz": sa_xyz,
            "sa_feat": sa_feat,
            "sa_offsets": sa_off,
            "sa_indices": sa_idx,
        }
