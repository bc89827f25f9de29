"""Packing of point clouds by offsets: the helpers every kernel, model and datamodule shares.

Clouds are concatenated along the first axis; ``offsets (B+1,)`` int64 starts at 0 and ends at
``N``, so cloud ``b`` owns rows ``offsets[b]:offsets[b+1]``. ``pc3d.data.batch`` re-exports these.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["batch_index", "check_offsets", "cloud_slices", "offsets_from_counts"]


def offsets_from_counts(counts: Sequence[int] | Tensor, device: torch.device | None = None) -> Tensor:
    """Cumulative offsets ``(B+1,)`` int64 starting at 0 from per-cloud counts ``(B,)``."""
    counts = torch.as_tensor(counts, dtype=torch.long, device=device)
    return torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])


def batch_index(offsets: Tensor) -> Tensor:
    """Cloud index of every packed row, ``(N,)`` int64, from ``offsets (B+1,)``."""
    counts = offsets[1:] - offsets[:-1]
    return torch.repeat_interleave(torch.arange(counts.numel(), device=offsets.device), counts)


def cloud_slices(offsets: Tensor) -> list[slice]:
    """One ``slice`` of rows per cloud for ``offsets (B+1,)``."""
    o = offsets.tolist()
    return [slice(o[b], o[b + 1]) for b in range(len(o) - 1)]


def check_offsets(
    offsets: Any, n: int, name: str = "offsets", device: torch.device | None = None, length_name: str = "N"
) -> Tensor:
    """Validate a packing ``(B+1,)`` of ``n`` rows and return it as int64 (on ``device`` if given).

    Accepts a tensor, numpy array or sequence of integers; ``None`` means one cloud. Raises
    ``ValueError`` naming ``name`` unless the offsets are 1-D integers from 0 to ``n``, non-decreasing
    (``length_name`` is what the message calls ``n``: the rows ``N``, a sequence length ``L``).
    """
    if offsets is None:
        return torch.tensor([0, n], dtype=torch.int64, device=device)
    if isinstance(offsets, np.ndarray):
        offsets = torch.from_numpy(offsets)
    elif not isinstance(offsets, Tensor):
        try:
            offsets = torch.as_tensor(offsets)
        except (TypeError, ValueError, RuntimeError) as e:
            raise ValueError(
                f"{name}: expected a 1-D integer tensor (B+1,), got {type(offsets).__name__}"
            ) from e
    if offsets.dim() != 1 or offsets.numel() < 1:
        raise ValueError(f"{name}: expected a 1-D tensor (B+1,), got shape {tuple(offsets.shape)}")
    if offsets.dtype not in (torch.int32, torch.int64, torch.uint8, torch.int16):
        raise ValueError(f"{name}: expected an integer tensor, got {offsets.dtype}")
    offsets = offsets.to(torch.int64)
    o = offsets.cpu()
    if int(o[0]) != 0 or int(o[-1]) != n:
        raise ValueError(
            f"{name} must start at 0 and end at {length_name} = {n}, got {int(o[0])} ... {int(o[-1])}"
        )
    if o.numel() > 1 and bool((o[1:] < o[:-1]).any()):
        raise ValueError(f"{name} must be non-decreasing")
    return offsets if device is None else offsets.to(device)
