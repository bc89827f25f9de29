"""The per-point segmentation criterion: weighted cross-entropy + Lovász-Softmax (Pointcept PTv3)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from pc3d.models.losses.lovasz import lovasz_softmax


class SegmentationLoss(nn.Module):
    """``ce_weight * CE + lovasz_weight * Lovász`` over labelled points; no parameters or buffers.

    Args:
        ce_weight, lovasz_weight: loss weights (Pointcept: 1 and 1).
        label_smoothing: cross-entropy label smoothing.
        ignore_index: label of unlabelled points, excluded from both terms (and from the metrics of
            :class:`~pc3d.tasks.segmentation.SegmentationModule`).

    ``forward(logits (N, C), target (N,)) -> {"loss", "ce", "lovasz"}``, scalar tensors computed in
    float32; CE is a zero that keeps the graph when no point is labelled.
    """

    def __init__(
        self,
        ce_weight: float = 1.0,
        lovasz_weight: float = 1.0,
        label_smoothing: float = 0.0,
        ignore_index: int = -1,
    ) -> None:
        super().__init__()
        self.ce_weight, self.lovasz_weight = float(ce_weight), float(lovasz_weight)
        self.label_smoothing, self.ignore_index = float(label_smoothing), int(ignore_index)

    def forward(self, logits: Tensor, target: Tensor) -> dict[str, Tensor]:
        target = target.long()
        if bool((target != self.ignore_index).any()):
            ce = F.cross_entropy(
                logits.float(), target, ignore_index=self.ignore_index, label_smoothing=self.label_smoothing
            )
        else:
            ce = logits.sum() * 0.0
        lov = lovasz_softmax(logits.float().softmax(-1), target, self.ignore_index)
        return {"loss": self.ce_weight * ce + self.lovasz_weight * lov, "ce": ce, "lovasz": lov}

    def extra_repr(self) -> str:
        return (
            f"ce_weight={self.ce_weight}, lovasz_weight={self.lovasz_weight}, "
            f"label_smoothing={self.label_smoothing}, ignore_index={self.ignore_index}"
        )
