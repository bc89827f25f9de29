"""Semantic segmentation as a Lightning task (Pointcept PTv3 recipe): CE + Lovász, AdamW + OneCycle,
split-wide mIoU/mAcc/allAcc, test-time voting over GridSample fragments and rotation/scale/flip views.

The model is any ``nn.Module`` called as ``model(coord (N,3), feat (N,C), offsets (B+1,), grid_coord=None)
-> logits (N, num_classes)`` (e.g. :class:`pc3d.models.meepo.MEEPO`, :class:`pc3d.models.ptv3.PTv3`).
Batches are :class:`pc3d.data.batch.PointBatch` from ``pc3d.data.scannet.ScanNetDataModule(task="seg")``:
``point["segment"]`` labels (-1 ignore), ``point["grid_coord"]``; validation clouds may carry
``meta["inverse"]``/``meta["origin_segment"]`` (scored at full resolution); test batches are the
fragments of a scene with ``point["index"]`` (original point ids) and ``meta["num_points"]``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from jsonargparse import lazy_instance
from lightning.pytorch.cli import OptimizerCallable
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn

from pc3d.data.batch import PointBatch, offsets_from_counts
from pc3d.metrics.segmentation import SegmentationMetric, format_class_table
from pc3d.models.losses.lovasz import lovasz_softmax
from pc3d.tasks.hparams import save_task_hyperparameters
from pc3d.tasks.schedules import OneCycle, Schedule


def view_transform(coord: Tensor, rotate_z: float = 0.0, scale: float = 1.0, flip: bool = False) -> Tensor:
    """Test-time view of ``coord (N, 3)``: rotation by ``rotate_z`` radians about +z, scaling, x-mirror."""
    c, s = math.cos(rotate_z), math.sin(rotate_z)
    rot = coord.new_tensor([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    out = coord @ rot.T * scale
    if flip:
        out = out * out.new_tensor([-1.0, 1.0, 1.0])
    return out


class SegmentationModule(L.LightningModule):
    """Semantic segmentation task.

    Args:
        model: segmentation network (see module docstring).
        num_classes: classes of the logits (default: ``model.num_classes``).
        class_names: names for the per-class IoU table.
        ignore_index: label excluded from losses and metrics.
        ce_weight, lovasz_weight: loss weights (Pointcept: 1 and 1).
        label_smoothing: cross-entropy label smoothing.
        optimizer: called with the parameter groups (``[{"params": other}, {"params": block}]``) to
            make the optimizer; in YAML ``class_path: torch.optim.AdamW`` with ``init_args`` (default:
            AdamW lr 0.006, weight decay 0.05, as Pointcept ScanNet).
        block_lr_scale: learning-rate factor for parameters whose name matches ``block_lr_pattern``
            (Pointcept: 0.1 for the transformer/mixer blocks): their group's ``lr`` is the optimizer's
            times this factor.
        block_lr_pattern: regex on parameter names selecting the block parameters.
        scheduler: a :class:`pc3d.tasks.schedules.Schedule`: :class:`~pc3d.tasks.schedules.OneCycle`
            (default, Pointcept's pct_start 0.05, div 10, final div 1000) or
            :class:`~pc3d.tasks.schedules.Cosine`, per step over the training budget: they complete
            when ``max_epochs``/``max_steps`` or ``max_time`` ends the run, whichever comes first; or
            ``None`` (constant learning rate).
        tta_rotations: test-time z-rotations in multiples of pi (Pointcept: 0, 0.5, 1, 1.5).
        tta_scales: test-time scales (Pointcept: 1, 0.95, 1.05).
        tta_flip: add one x-mirrored view.
        test_clouds_per_forward: test fragments packed into one forward pass.
        print_class_table: print the per-class IoU table at the end of validation/test epochs.
        color_in_feat: the first 3 input channels are colours scaled to [-1, 1] (ScanNet datamodule);
            prediction records then carry ``color`` for visualisation.
    """

    def __init__(
        self,
        model: nn.Module,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        ignore_index: int = -1,
        ce_weight: float = 1.0,
        lovasz_weight: float = 1.0,
        label_smoothing: float = 0.0,
        optimizer: OptimizerCallable = lambda params: torch.optim.AdamW(params, lr=0.006, weight_decay=0.05),
        block_lr_scale: float = 0.1,
        block_lr_pattern: str = r"(^|\.)(enc|dec)\.\d+\.\d+\.",
        scheduler: Schedule | None = lazy_instance(OneCycle),
        tta_rotations: Sequence[float] = (0.0,),
        tta_scales: Sequence[float] = (1.0,),
        tta_flip: bool = False,
        test_clouds_per_forward: int = 1,
        print_class_table: bool = True,
        color_in_feat: bool = True,
    ) -> None:
        super().__init__()
        if scheduler is not None and not isinstance(scheduler, Schedule):
            raise ValueError(
                f"scheduler: expected a pc3d.tasks.schedules.Schedule (e.g. OneCycle) or None, got {scheduler!r}"
            )
        num_classes = num_classes if num_classes is not None else getattr(model, "num_classes", None)
        if not num_classes or num_classes < 1:
            raise ValueError("num_classes: give it, or use a model with a positive num_classes attribute")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"class_names: expected {num_classes} names, got {len(class_names)}")
        if not tta_rotations or not tta_scales or test_clouds_per_forward < 1:
            raise ValueError(
                "tta_rotations/tta_scales: need at least one value; test_clouds_per_forward >= 1"
            )
        re.compile(block_lr_pattern)
        save_task_hyperparameters(self, ("model", "optimizer", "scheduler"))
        self.model = model
        self.optimizer, self.scheduler = optimizer, scheduler
        self.num_classes = num_classes
        self.class_names = list(class_names) if class_names is not None else None
        self.val_metric = SegmentationMetric(num_classes, ignore_index)
        self.test_metric = SegmentationMetric(num_classes, ignore_index)
        views = [(math.pi * r, float(s), False) for s in tta_scales for r in tta_rotations]
        if tta_flip:
            views.append((0.0, 1.0, True))
        self.views = views

    # ------------------------------------------------------------------ model
    def forward(self, batch: PointBatch, view: tuple[float, float, bool] | None = None) -> Tensor:
        """Logits ``(N, num_classes)``; a non-identity ``view`` re-voxelizes the transformed coordinates."""
        if view is None or view == (0.0, 1.0, False):
            return self.model(
                batch.coord, batch.feat, batch.offsets, grid_coord=batch.point.get("grid_coord")
            )
        return self.model(view_transform(batch.coord, *view), batch.feat, batch.offsets)

    def loss(self, logits: Tensor, target: Tensor) -> dict[str, Tensor]:
        hp = self.hparams
        target = target.long()
        if bool((target != hp.ignore_index).any()):
            ce = F.cross_entropy(
                logits.float(), target, ignore_index=hp.ignore_index, label_smoothing=hp.label_smoothing
            )
        else:
            ce = logits.sum() * 0.0
        lov = lovasz_softmax(logits.float().softmax(-1), target, hp.ignore_index)
        return {"loss": hp.ce_weight * ce + hp.lovasz_weight * lov, "ce": ce, "lovasz": lov}

    @staticmethod
    def _target(batch: PointBatch) -> Tensor:
        if "segment" not in batch.point:
            raise ValueError("batch.point['segment']: segmentation batches need per-point labels")
        return batch.point["segment"]

    # ------------------------------------------------------------------ steps
    def training_step(self, batch: PointBatch, batch_idx: int) -> Tensor:
        logits = self(batch)
        target = self._target(batch).long()
        losses = self.loss(logits, target)
        n = batch.num_clouds
        for k, v in losses.items():
            self.log(f"train/{k}", v, prog_bar=k == "loss", batch_size=n)
        keep = target != self.hparams.ignore_index
        if bool(keep.any()):
            acc = (logits.argmax(1)[keep] == target[keep]).float().mean()
            self.log("train/acc", acc, prog_bar=True, batch_size=n)
        return losses["loss"]

    def validation_step(self, batch: PointBatch, batch_idx: int) -> None:
        logits = self(batch)
        target = self._target(batch).long()
        losses = self.loss(logits, target)
        self.log("val/loss", losses["loss"], batch_size=batch.num_clouds, sync_dist=True)
        metas = batch.meta
        if metas and all("inverse" in m and "origin_segment" in m for m in metas):
            for lg, m in zip(batch.split(logits), metas):  # full-resolution scoring of every original point
                inverse = torch.as_tensor(m["inverse"], device=lg.device).long()
                self.val_metric.update(
                    lg.argmax(1)[inverse], torch.as_tensor(m["origin_segment"]).to(lg.device)
                )
        else:
            self.val_metric.update(logits.argmax(1), target)

    def vote(self, batch: PointBatch) -> list[dict[str, Any]]:
        """Scene-level class probabilities, summed over test fragments and views.

        Returns one dict per scene: ``meta`` (of its first cloud), ``probs (N_orig, C)``, ``coord (N_orig, 3)``,
        ``feat (N_orig, C_in)`` and ``segment (N_orig,)`` (``None`` without labels). Clouds with ``point["index"]`` and ``meta["num_points"]``
        are fragments of the scene named by ``meta["scene_id"]``; other clouds are scenes of their own
        (mapped to full resolution with ``meta["inverse"]`` when present).
        """
        metas = batch.meta or [{} for _ in range(batch.num_clouds)]
        counts = batch.counts()
        has_index = "index" in batch.point
        index = batch.split(batch.point["index"]) if has_index else None
        target = batch.split(batch.point["segment"]) if "segment" in batch.point else None
        groups: dict[Any, list[int]] = {}
        for i, m in enumerate(metas):
            key = m.get("scene_id", i) if has_index and "num_points" in m else ("cloud", i)
            groups.setdefault(key, []).append(i)
        probs = [torch.zeros(0) for _ in range(batch.num_clouds)]
        step = self.hparams.test_clouds_per_forward
        for start in range(0, batch.num_clouds, step):
            sel = list(range(start, min(start + step, batch.num_clouds)))
            sub = PointBatch(
                coord=torch.cat([batch.split(batch.coord)[i] for i in sel]),
                feat=torch.cat([batch.split(batch.feat)[i] for i in sel]),
                offsets=offsets_from_counts([counts[i] for i in sel], device=batch.coord.device),
                point={"grid_coord": torch.cat([batch.split(batch.point["grid_coord"])[i] for i in sel])}
                if "grid_coord" in batch.point
                else {},
            )
            acc = None
            for view in self.views:
                p = self(sub, view).float().softmax(-1)
                acc = p if acc is None else acc + p
            for i, p in zip(sel, sub.split(acc)):
                probs[i] = p
        out = []
        for key, members in groups.items():
            m0 = metas[members[0]]
            if isinstance(key, tuple) and key[0] == "cloud":
                p = probs[members[0]]
                seg = target[members[0]] if target is not None else None
                if "inverse" in m0:
                    inv = torch.as_tensor(m0["inverse"], device=p.device).long()
                    p = p[inv]
                    seg = (
                        torch.as_tensor(m0["origin_segment"]).to(p.device) if "origin_segment" in m0 else None
                    )
                out.append({"meta": m0, "probs": p, "segment": seg})
                continue
            n = int(m0["num_points"])
            total = torch.zeros(n, self.num_classes, device=batch.coord.device)
            seg = torch.full((n,), self.hparams.ignore_index, dtype=torch.long, device=batch.coord.device)
            covered = torch.zeros(n, dtype=torch.bool, device=batch.coord.device)
            for i in members:
                total.index_add_(0, index[i], probs[i])
                covered[index[i]] = True
                if target is not None:
                    seg[index[i]] = target[i].long()
            if not bool(covered.all()):
                raise ValueError(f"test fragments of scene {key!r} do not cover all {n} points")
            out.append({"meta": m0, "probs": total, "segment": seg if target is not None else None})
        return out

    def test_step(self, batch: PointBatch, batch_idx: int) -> None:
        for scene in self.vote(batch):
            if scene["segment"] is not None:
                self.test_metric.update(scene["probs"].argmax(1), scene["segment"])

    def predict_step(
        self, batch: PointBatch, batch_idx: int, dataloader_idx: int = 0
    ) -> list[dict[str, Any]]:
        """One prediction record per scene (docs/architecture.md): ``pred (N_orig,)`` for every original
        point, with ``coord``/``color`` of those points, ``segment`` if labelled, ``class_names`` and a
        small ``meta`` (``scene_id`` and other scalars)."""
        records = []
        for scene in self.vote(batch):
            meta = scene["meta"]
            record: dict[str, Any] = {
                "meta": {k: v for k, v in meta.items() if isinstance(v, (str, int, float, bool))},
                "pred": scene["probs"].argmax(1).cpu(),
                "class_names": list(self.class_names or [f"class_{i}" for i in range(self.num_classes)]),
            }
            if "origin_coord" in meta:
                record["coord"] = torch.as_tensor(meta["origin_coord"]).cpu()
            if "origin_color" in meta:
                record["color"] = torch.as_tensor(meta["origin_color"]).cpu()
            if scene["segment"] is not None:
                record["segment"] = scene["segment"].cpu()
            records.append(record)
        return records

    @torch.no_grad()
    def viz_samples(self, batch: PointBatch, outputs: Any = None) -> list[dict[str, Any]]:
        """Clouds of a validation batch for ``pc3d.viz.callback.RenderValidationScenes``:
        ``coord``, ``segment``, ``pred`` (argmax of one forward pass), ``class_names`` and ``name``."""
        pred = self(batch).argmax(1)
        names = list(self.class_names or [f"class_{i}" for i in range(self.num_classes)])
        segments = batch.split(batch.point["segment"]) if "segment" in batch.point else None
        metas = batch.meta or [{} for _ in range(batch.num_clouds)]
        samples = []
        for i, (coord, p) in enumerate(zip(batch.split(batch.coord), batch.split(pred))):
            sample = {
                "coord": coord,
                "pred": p,
                "class_names": names,
                "name": str(metas[i].get("scene_id", i)),
            }
            if segments is not None:
                sample["segment"] = segments[i]
            samples.append(sample)
        return samples

    # ------------------------------------------------------------------ epoch ends
    def _log_scores(self, metric: SegmentationMetric, stage: str) -> None:
        if int(metric.confmat.sum()) == 0 and not (
            torch.distributed.is_available() and torch.distributed.is_initialized()
        ):
            metric.reset()
            return
        scores = metric.compute()
        metric.reset()
        for key, name in (("miou", "mIoU"), ("macc", "mAcc"), ("allacc", "allAcc")):
            self.log(f"{stage}/{name}", float(scores[key]), prog_bar=key == "miou")
        names = self.class_names or [f"class_{i}" for i in range(self.num_classes)]
        for name, iou in zip(names, scores["iou"].tolist()):
            if not math.isnan(iou):
                self.log(f"{stage}/iou/{name}", iou)
        if self.hparams.print_class_table and not self.trainer.sanity_checking:
            rank_zero_info(f"[{stage}] epoch {self.current_epoch}\n" + format_class_table(scores, names))

    def on_validation_epoch_end(self) -> None:
        self._log_scores(self.val_metric, "val")

    def on_test_epoch_end(self) -> None:
        self._log_scores(self.test_metric, "test")

    # ------------------------------------------------------------------ optimiser
    def configure_optimizers(self) -> Any:
        hp = self.hparams
        pattern = re.compile(hp.block_lr_pattern)
        block, other = [], []
        for name, p in self.model.named_parameters():
            if p.requires_grad:
                (block if pattern.search(name) else other).append(p)
        groups = [{"params": other}]
        if block:
            groups.append({"params": block})
        opt = self.optimizer(groups)
        if block:
            opt.param_groups[1]["lr"] = opt.param_groups[1]["lr"] * hp.block_lr_scale
        if self.scheduler is None:
            return opt
        return {"optimizer": opt, "lr_scheduler": self.scheduler.lr_scheduler_config(opt, self._trainer)}
