"""Lovász-Softmax loss (Berman et al., CVPR 2018): a convex surrogate of the per-class Jaccard loss.

For class ``c`` with errors ``m_i = |[y_i = c] - p_ic|`` sorted in decreasing order, the loss is
``sum_i m_(i) * g_i`` where ``g`` is the discrete derivative of the Jaccard loss along the sorted
errors (:func:`lovasz_grad`). Classes are averaged over those present in the target
(``classes="present"``, Pointcept's setting) or over all of them (``"all"``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def lovasz_grad(gt_sorted: Tensor) -> Tensor:
    """Foreground indicator ``(P,)`` or ``(P, C)`` sorted by decreasing error (along dim 0) -> Jaccard-loss
    increments of the same shape."""
    total = gt_sorted.sum(0)
    inter = total - gt_sorted.cumsum(0)
    union = total + (1.0 - gt_sorted).cumsum(0)
    jaccard = 1.0 - inter / union
    if gt_sorted.numel() > 1:
        jaccard = torch.cat([jaccard[:1], jaccard[1:] - jaccard[:-1]])
    return jaccard


def lovasz_softmax(probs: Tensor, target: Tensor, ignore_index: int = -1, classes: str = "present") -> Tensor:
    """Lovász-Softmax of ``probs (N, C)`` (rows sum to 1) against ``target (N,)``; scalar, 0 if nothing is labelled."""
    if probs.dim() != 2 or target.shape != probs.shape[:1]:
        raise ValueError(
            f"probs/target: expected (N, C) and (N,), got {tuple(probs.shape)}, {tuple(target.shape)}"
        )
    if classes not in ("present", "all"):
        raise ValueError(f"classes: expected 'present' or 'all', got {classes!r}")
    keep = target != ignore_index
    probs, target = probs[keep], target[keep].long()
    if target.numel() == 0:
        return probs.sum() * 0.0
    fg = (target[:, None] == torch.arange(probs.shape[1], device=target.device)[None]).to(
        probs.dtype
    )  # (N, C)
    errors = (fg - probs).abs()
    errors_sorted, perm = torch.sort(errors, dim=0, descending=True)
    fg_sorted = torch.gather(fg, 0, perm)
    losses = (errors_sorted * lovasz_grad(fg_sorted)).sum(0)  # (C,)
    if classes == "present":
        present = fg.sum(0) > 0
        return losses[present].mean()
    return losses.mean()


class LovaszLoss(nn.Module):
    """``forward(logits (N, C), target (N,)) -> scalar`` Lovász-Softmax on ``softmax(logits)``."""

    def __init__(self, ignore_index: int = -1, classes: str = "present") -> None:
        super().__init__()
        self.ignore_index, self.classes = ignore_index, classes

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return lovasz_softmax(logits.float().softmax(-1), target, self.ignore_index, self.classes)
