"""Small helpers shared by the detection heads."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from types import ModuleType

import torch
from torch import Tensor, nn


def box_ops() -> ModuleType:
    """The ``pc3d.kernels.boxes`` module (imported on first use)."""
    return importlib.import_module("pc3d.kernels.boxes")


def point_ops() -> ModuleType:
    """The ``pc3d.kernels.points`` module (imported on first use)."""
    return importlib.import_module("pc3d.kernels.points")


def segments(offsets: Tensor) -> list[tuple[int, int]]:
    """``offsets (B+1,)`` -> ``[(start, end)] * B``."""
    o = offsets.tolist()
    return [(o[i], o[i + 1]) for i in range(len(o) - 1)]


def mlp(channels: Sequence[int], last_act: bool = True) -> nn.Sequential:
    """Row-wise ``Linear(no bias) -> BN -> ReLU`` stack; the last layer is a plain biased ``Linear``
    when ``last_act`` is False."""
    layers: list[nn.Module] = []
    pairs = list(zip(channels[:-1], channels[1:]))
    for i, (a, b) in enumerate(pairs):
        if i == len(pairs) - 1 and not last_act:
            layers.append(nn.Linear(a, b))
        else:
            layers += [nn.Linear(a, b, bias=False), nn.BatchNorm1d(b), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def class_mean_sizes(boxes: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """Mean full sizes ``(num_classes, 3)`` of ``boxes (M,7)`` per class ``labels (M,)`` (the size clusters).

    Raises ``ValueError`` if a class has no box.
    """
    out = torch.zeros(num_classes, 3, dtype=torch.float64)
    cnt = torch.zeros(num_classes, dtype=torch.float64)
    out.index_add_(0, labels.long(), boxes[:, 3:6].double())
    cnt.index_add_(0, labels.long(), torch.ones(len(labels), dtype=torch.float64))
    if bool((cnt == 0).any()):
        raise ValueError(f"labels: classes {torch.nonzero(cnt == 0).flatten().tolist()} have no box")
    return (out / cnt[:, None]).float()


def angle_to_class(angle: Tensor, num_bins: int) -> tuple[Tensor, Tensor]:
    """Heading ``angle`` -> ``(bin int64, residual)``; bins are centred at ``k * 2pi / num_bins``."""
    per = 2 * torch.pi / num_bins
    a = torch.remainder(angle + per / 2, 2 * torch.pi)
    cls = torch.clamp(torch.floor(a / per).long(), 0, num_bins - 1)
    return cls, a - (cls.to(a.dtype) * per + per / 2)


def class_to_angle(cls: Tensor, res: Tensor, num_bins: int) -> Tensor:
    """Inverse of :func:`angle_to_class`, wrapped to ``(-pi, pi]``."""
    a = cls.to(res.dtype) * (2 * torch.pi / num_bins) + res
    return torch.atan2(torch.sin(a), torch.cos(a))
