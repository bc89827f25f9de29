"""Indoor 3D detection mAP (ScanNet / SUN RGB-D protocol of VoteNet and mmdet3d ``indoor_eval``).

VOC "area" (all-point) average precision per class with axis-aligned 3D IoU. Detections of a class
are ranked by score over the whole dataset; a detection is a true positive when its best-overlapping
ground-truth box of the same scene and class has IoU ``> thr`` (strict) and was not matched before,
otherwise a false positive. Classes without ground truth get AP ``nan`` and are left out of the mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric

from pc3d.metrics.detection import DetectionMetric


def iou3d_axis_aligned(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Axis-aligned 3D IoU ``(N,M)`` of boxes ``a (N,7)``, ``b (M,7)`` (yaw ignored)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, a.shape[-1] if np.ndim(a) == 2 else 7)
    b = np.asarray(b, dtype=np.float64).reshape(-1, b.shape[-1] if np.ndim(b) == 2 else 7)
    amin, amax = a[:, None, :3] - a[:, None, 3:6] / 2, a[:, None, :3] + a[:, None, 3:6] / 2
    bmin, bmax = b[None, :, :3] - b[None, :, 3:6] / 2, b[None, :, :3] + b[None, :, 3:6] / 2
    inter = np.clip(np.minimum(amax, bmax) - np.maximum(amin, bmin), 0, None).prod(-1)
    va, vb = a[:, 3:6].prod(-1), b[:, 3:6].prod(-1)
    return inter / np.maximum(va[:, None] + vb[None, :] - inter, 1e-12)


def voc_ap_area(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC all-point AP: area under the precision envelope (precision made non-increasing)."""
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    i = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(((mrec[i + 1] - mrec[i]) * mpre[i + 1]).sum())


def average_precision_class(
    det_scene: np.ndarray,
    det_boxes: np.ndarray,
    det_scores: np.ndarray,
    gt_scene: np.ndarray,
    gt_boxes: np.ndarray,
    iou_thresholds: Sequence[float],
) -> tuple[list[float], list[float]]:
    """AP and final recall of one class at each IoU threshold (``nan`` without ground truth).

    ``det_scene (D,)`` / ``gt_scene (G,)`` are scene ids; boxes ``(D,7)`` / ``(G,7)``.
    """
    npos = len(gt_boxes)
    if npos == 0:
        return [float("nan")] * len(iou_thresholds), [float("nan")] * len(iou_thresholds)
    order = np.argsort(-det_scores, kind="stable")
    det_scene, det_boxes = det_scene[order], det_boxes[order]
    gt_by_scene: dict[int, np.ndarray] = {}
    for s in np.unique(gt_scene):
        gt_by_scene[int(s)] = np.nonzero(gt_scene == s)[0]
    best_iou = np.full(len(det_boxes), -np.inf)
    best_gt = np.full(len(det_boxes), -1)
    for s in np.unique(det_scene):
        di = np.nonzero(det_scene == s)[0]
        gi = gt_by_scene.get(int(s))
        if gi is None:
            continue
        iou = iou3d_axis_aligned(det_boxes[di], gt_boxes[gi])
        best_iou[di] = iou.max(1)
        best_gt[di] = gi[iou.argmax(1)]
    aps, recs = [], []
    for thr in iou_thresholds:
        matched = np.zeros(npos, dtype=bool)
        tp = np.zeros(len(det_boxes))
        for d in range(len(det_boxes)):
            if best_iou[d] > thr and not matched[best_gt[d]]:
                matched[best_gt[d]] = True
                tp[d] = 1.0
        fp = 1.0 - tp
        tpc, fpc = np.cumsum(tp), np.cumsum(fp)
        rec = tpc / npos
        prec = tpc / np.maximum(tpc + fpc, np.finfo(np.float64).eps)
        aps.append(voc_ap_area(rec, prec))
        recs.append(float(rec[-1]) if len(rec) else 0.0)
    return aps, recs


def indoor_map(
    preds: Sequence[dict[str, np.ndarray | Tensor]],
    gts: Sequence[dict[str, np.ndarray | Tensor]],
    num_classes: int,
    iou_thresholds: Sequence[float] = (0.25, 0.5),
) -> dict[str, np.ndarray]:
    """mAP over scenes. ``preds[i]``: ``boxes (K,7)``, ``scores (K,)``, ``labels (K,)``; ``gts[i]``:
    ``boxes (G,7)``, ``labels (G,)``. Returns ``{"ap": (T, num_classes), "recall": (T, num_classes),
    "map": (T,), "mar": (T,)}`` with ``T = len(iou_thresholds)``.
    """
    if len(preds) != len(gts):
        raise ValueError(f"preds/gts: expected the same number of scenes, got {len(preds)} and {len(gts)}")

    def cat(
        items: Sequence[dict], key: str, shape: tuple[int, ...], dtype: type
    ) -> tuple[np.ndarray, np.ndarray]:
        arrs = [
            np.asarray(torch.as_tensor(d[key]).detach().cpu(), dtype=dtype).reshape(-1, *shape) for d in items
        ]
        scene = np.concatenate([np.full(len(a), i) for i, a in enumerate(arrs)]) if arrs else np.zeros(0)
        return (np.concatenate(arrs) if arrs else np.zeros((0, *shape), dtype)), scene.astype(np.int64)

    pb, ps = cat(preds, "boxes", (7,), np.float64)
    psc, _ = cat(preds, "scores", (), np.float64)
    pl, _ = cat(preds, "labels", (), np.int64)
    gb, gs = cat(gts, "boxes", (7,), np.float64)
    gl, _ = cat(gts, "labels", (), np.int64)
    return _map_from_arrays(ps, pb, psc, pl, gs, gb, gl, num_classes, iou_thresholds)


def _map_from_arrays(ps, pb, psc, pl, gs, gb, gl, num_classes, iou_thresholds) -> dict[str, np.ndarray]:
    T = len(iou_thresholds)
    ap = np.full((T, num_classes), np.nan)
    rec = np.full((T, num_classes), np.nan)
    for c in range(num_classes):
        dm, gm = pl == c, gl == c
        a, r = average_precision_class(ps[dm], pb[dm], psc[dm], gs[gm], gb[gm], iou_thresholds)
        ap[:, c], rec[:, c] = a, r
    with np.errstate(all="ignore"):
        has = ~np.isnan(ap[0])
        m = ap[:, has].mean(1) if has.any() else np.full(T, np.nan)
        mr = rec[:, has].mean(1) if has.any() else np.full(T, np.nan)
    return {"ap": ap, "recall": rec, "map": m, "mar": mr}


class IndoorDetectionMAP(Metric):
    """torchmetrics wrapper of :func:`indoor_map`; states are concatenated across DDP ranks.

    ``update(preds, gts)`` takes lists (one entry per scene) of dicts as in :func:`indoor_map`.
    ``compute()`` returns ``{"map_25": ..., "ap_25": (num_classes,), ...}`` keyed by ``int(100 * thr)``.
    """

    full_state_update = False

    def __init__(self, num_classes: int, iou_thresholds: Sequence[float] = (0.25, 0.5), **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.iou_thresholds = tuple(float(t) for t in iou_thresholds)
        for name in ("p_scene", "p_boxes", "p_scores", "p_labels", "g_scene", "g_boxes", "g_labels"):
            self.add_state(name, default=[], dist_reduce_fx="cat")
        self._count = 0

    def update(self, preds: Sequence[dict[str, Tensor]], gts: Sequence[dict[str, Tensor]]) -> None:
        if len(preds) != len(gts):
            raise ValueError(
                f"preds/gts: expected the same number of scenes, got {len(preds)} and {len(gts)}"
            )
        rank = (
            torch.distributed.get_rank()
            if torch.distributed.is_available() and torch.distributed.is_initialized()
            else 0
        )
        for p, g in zip(preds, gts):
            sid = self._count * 4096 + rank
            self._count += 1
            pb = torch.as_tensor(p["boxes"]).detach().reshape(-1, 7).float().to(self.device)
            gb = torch.as_tensor(g["boxes"]).detach().reshape(-1, 7).float().to(self.device)
            self.p_scene.append(torch.full((len(pb),), sid, dtype=torch.long, device=self.device))
            self.p_boxes.append(pb)
            self.p_scores.append(torch.as_tensor(p["scores"]).detach().reshape(-1).float().to(self.device))
            self.p_labels.append(torch.as_tensor(p["labels"]).detach().reshape(-1).long().to(self.device))
            self.g_scene.append(torch.full((len(gb),), sid, dtype=torch.long, device=self.device))
            self.g_boxes.append(gb)
            self.g_labels.append(torch.as_tensor(g["labels"]).detach().reshape(-1).long().to(self.device))

    def _np(self, x: list[Tensor] | Tensor, shape: tuple[int, ...]) -> np.ndarray:
        if isinstance(x, list):
            x = torch.cat(x) if x else torch.zeros((0, *shape))
        return x.detach().cpu().numpy().reshape(-1, *shape)

    def compute(self) -> dict[str, Tensor]:
        r = _map_from_arrays(
            self._np(self.p_scene, ()),
            self._np(self.p_boxes, (7,)).astype(np.float64),
            self._np(self.p_scores, ()).astype(np.float64),
            self._np(self.p_labels, ()),
            self._np(self.g_scene, ()),
            self._np(self.g_boxes, (7,)).astype(np.float64),
            self._np(self.g_labels, ()),
            self.num_classes,
            self.iou_thresholds,
        )
        out: dict[str, Tensor] = {}
        for t, thr in enumerate(self.iou_thresholds):
            key = f"{int(round(thr * 100))}"
            out[f"map_{key}"] = torch.tensor(r["map"][t])
            out[f"mar_{key}"] = torch.tensor(r["mar"][t])
            out[f"ap_{key}"] = torch.as_tensor(r["ap"][t])
        return out

    def reset(self) -> None:
        super().reset()
        self._count = 0


class IndoorMAP(DetectionMetric):
    """VOC all-point mAP with axis-aligned 3D IoU at ``iou_thresholds`` (ScanNet, SUN RGB-D), as a
    detection task's metric: :class:`IndoorDetectionMAP` over the batches' ground-truth boxes.

    Scores: ``map_<t>``, ``mar_<t>`` and ``ap_<t>/<class>`` for every threshold ``t`` in percent
    (``map_25``, ``ap_50/chair``, ...); the mAPs are shown in the progress bar.
    """

    def __init__(self, iou_thresholds: Sequence[float] = (0.25, 0.5)) -> None:
        super().__init__()
        if not iou_thresholds or not all(0.0 < float(t) < 1.0 for t in iou_thresholds):
            raise ValueError(f"iou_thresholds: expected values in (0, 1), got {list(iou_thresholds)}")
        self.iou_thresholds = tuple(float(t) for t in iou_thresholds)
        self.map: IndoorDetectionMAP | None = None

    @property
    def progress_bar(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(f"map_{int(round(t * 100))}" for t in self.iou_thresholds)

    def bind(self, class_names: Sequence[str]) -> None:
        super().bind(class_names)
        self.map = IndoorDetectionMAP(len(self.class_names), self.iou_thresholds)

    def _metric(self) -> IndoorDetectionMAP:
        if self.map is None:
            raise ValueError("class_names: the indoor metric is used before the task bound its classes")
        return self.map

    def update(self, preds: Sequence[dict[str, Tensor]], batch: Any) -> None:
        if batch.boxes is None or batch.box_labels is None:
            raise ValueError("batch.boxes/box_labels: ground truth is required for evaluation")
        gts = [
            {"boxes": b, "labels": lab}
            for b, lab in zip(batch.split_boxes(batch.boxes), batch.split_boxes(batch.box_labels))
        ]
        self._metric().update(preds, gts)

    def compute(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for key, value in self._metric().compute().items():
            if key.startswith("ap_"):
                for name, ap in zip(self.class_names, value.tolist()):
                    if ap == ap:  # classes without ground truth are nan
                        out[f"{key}/{name}"] = float(ap)
            elif value == value:
                out[key] = float(value)
        return out

    def reset(self) -> None:
        self._metric().reset()
