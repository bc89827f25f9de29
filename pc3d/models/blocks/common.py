"""Small building blocks shared by the serialized point backbones: DropPath, MLP, norms."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def drop_path(x: Tensor, p: float, training: bool, batch: Tensor | None = None) -> Tensor:
    """Stochastic depth on a packed ``(N, C)`` tensor.

    With ``batch (N,)`` (cloud index of every row) whole clouds are dropped together, which is
    the stochastic-depth meaning of "sample"; without it every row is its own sample. Kept rows
    are scaled by ``1 / (1 - p)``.
    """
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    if batch is None:
        mask = x.new_empty(x.shape[0], 1).bernoulli_(keep)
    else:
        num = int(batch.max()) + 1 if batch.numel() else 0
        mask = x.new_empty(num).bernoulli_(keep)[batch].unsqueeze(1)
    return x * mask / keep


class DropPath(nn.Module):
    """Module form of :func:`drop_path`; ``forward(x (N, C), batch (N,) | None) -> (N, C)``."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop_path: expected a probability in [0, 1), got {p}")
        self.p = float(p)

    def forward(self, x: Tensor, batch: Tensor | None = None) -> Tensor:
        return drop_path(x, self.p, self.training, batch)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class MLP(nn.Module):
    """``Linear(C, hidden) -> GELU -> Dropout -> Linear(hidden, C) -> Dropout`` on ``(N, C)`` rows."""

    def __init__(
        self, channels: int, hidden: int | None = None, out_channels: int | None = None, drop: float = 0.0
    ):
        super().__init__()
        hidden = hidden or channels
        self.fc1 = nn.Linear(channels, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, out_channels or channels)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


def make_norm(kind: str, channels: int) -> nn.Module:
    """Per-point norm layer by name: ``"layer"`` (LayerNorm), ``"rms"`` (RMSNorm) or ``"batch"`` (BatchNorm1d)."""
    if kind == "layer":
        return nn.LayerNorm(channels)
    if kind == "rms":
        return nn.RMSNorm(channels, eps=1e-5)
    if kind == "batch":
        return nn.BatchNorm1d(channels, eps=1e-3, momentum=0.01)
    raise ValueError(f"norm: expected 'layer', 'rms' or 'batch', got {kind!r}")


def linear_bn_gelu(in_channels: int, out_channels: int) -> nn.Sequential:
    """``Linear -> BatchNorm1d -> GELU`` on ``(N, C)`` rows (PTv3 pooling/unpooling projection)."""
    return nn.Sequential(nn.Linear(in_channels, out_channels), make_norm("batch", out_channels), nn.GELU())


def segment_positions(offsets: Tensor) -> tuple[Tensor, Tensor]:
    """For packed rows: ``(local (N,), length (N,))`` = position inside its cloud and that cloud's size."""
    counts = offsets[1:] - offsets[:-1]
    starts = torch.repeat_interleave(offsets[:-1], counts)
    n = int(offsets[-1])
    local = torch.arange(n, device=offsets.device) - starts
    return local, torch.repeat_interleave(counts, counts)
