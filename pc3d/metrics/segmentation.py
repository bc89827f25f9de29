"""Semantic-segmentation metrics from a split-wide confusion matrix (Pointcept ``intersection_and_union``).

IoU_c = ΣI_c / ΣU_c over the whole split, mIoU = mean IoU over the classes that occur in the
target or the prediction (a class never seen nor predicted is reported as NaN and left out),
mAcc = mean recall over the classes present in the target, allAcc = correct / labelled points.
Points whose target is ``ignore_index`` are dropped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor
from torchmetrics import Metric


def confusion_matrix(pred: Tensor, target: Tensor, num_classes: int, ignore_index: int = -1) -> Tensor:
    """``(C, C)`` int64 counts, rows = target class, columns = predicted class.

    ``pred (N,)`` and ``target (N,)`` integer labels; targets equal to ``ignore_index`` are dropped.
    """
    if pred.shape != target.shape or pred.dim() != 1:
        raise ValueError(
            f"pred/target: expected equal 1-D shapes, got {tuple(pred.shape)} and {tuple(target.shape)}"
        )
    keep = target != ignore_index
    pred, target = pred[keep].long(), target[keep].long()
    if target.numel() and (int(target.min()) < 0 or int(target.max()) >= num_classes):
        raise ValueError(f"target: labels must be in [0, {num_classes}) or {ignore_index}")
    if pred.numel() and (int(pred.min()) < 0 or int(pred.max()) >= num_classes):
        raise ValueError(f"pred: labels must be in [0, {num_classes})")
    flat = torch.bincount(target * num_classes + pred, minlength=num_classes * num_classes)
    return flat.reshape(num_classes, num_classes)


def scores_from_confusion(conf: Tensor) -> dict[str, Tensor]:
    """``iou (C,)``, ``acc (C,)`` (NaN where undefined) and scalars ``miou``, ``macc``, ``allacc``."""
    conf = conf.double()
    inter = conf.diag()
    target = conf.sum(1)
    pred = conf.sum(0)
    union = target + pred - inter
    nan = torch.full_like(inter, float("nan"))
    iou = torch.where(union > 0, inter / union.clamp_min(1), nan)
    acc = torch.where(target > 0, inter / target.clamp_min(1), nan)
    total = target.sum()
    return {
        "iou": iou,
        "acc": acc,
        "miou": iou.nanmean() if bool((union > 0).any()) else torch.tensor(float("nan"), dtype=torch.float64),
        "macc": acc.nanmean()
        if bool((target > 0).any())
        else torch.tensor(float("nan"), dtype=torch.float64),
        "allacc": inter.sum() / total if total > 0 else torch.tensor(float("nan"), dtype=torch.float64),
    }


class SegmentationMetric(Metric):
    """Accumulates a ``(C, C)`` confusion matrix; ``compute()`` returns :func:`scores_from_confusion`.

    The state is sum-reduced across processes under DDP (torchmetrics ``dist_reduce_fx="sum"``), so
    the scores are split-wide on every rank.
    """

    full_state_update = False

    def __init__(self, num_classes: int, ignore_index: int = -1, **kwargs) -> None:
        super().__init__(**kwargs)
        if num_classes < 1:
            raise ValueError(f"num_classes: expected >= 1, got {num_classes}")
        self.num_classes, self.ignore_index = num_classes, ignore_index
        self.add_state(
            "confmat", torch.zeros(num_classes, num_classes, dtype=torch.long), dist_reduce_fx="sum"
        )

    def update(self, pred: Tensor, target: Tensor) -> None:
        self.confmat += confusion_matrix(pred, target, self.num_classes, self.ignore_index).to(
            self.confmat.device
        )

    def compute(self) -> dict[str, Tensor]:
        return scores_from_confusion(self.confmat)


def format_class_table(scores: dict[str, Tensor], class_names: Sequence[str] | None = None) -> str:
    """Plain-text per-class IoU/accuracy table with an mIoU/mAcc/allAcc footer."""
    iou, acc = scores["iou"].tolist(), scores["acc"].tolist()
    names = list(class_names) if class_names is not None else [f"class_{i}" for i in range(len(iou))]
    if len(names) != len(iou):
        raise ValueError(f"class_names: expected {len(iou)} names, got {len(names)}")
    width = max(12, *(len(n) for n in names))

    def f(v: float) -> str:
        return "   -  " if math.isnan(v) else f"{v:6.4f}"

    lines = [f"{'class':<{width}}  {'IoU':>6}  {'Acc':>6}"]
    lines += [f"{n:<{width}}  {f(i)}  {f(a)}" for n, i, a in zip(names, iou, acc)]
    lines.append(
        f"mIoU {f(float(scores['miou']))}  mAcc {f(float(scores['macc']))}  allAcc {f(float(scores['allacc']))}"
    )
    return "\n".join(lines)
