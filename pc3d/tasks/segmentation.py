"""Semantic segmentation as a Lightning task (Pointcept PTv3 recipe): AdamW + OneCycle, split-wide
mIoU/mAcc/allAcc, test-time voting over GridSample fragments and rotation/scale/flip views.

The model is a segmenter (:mod:`pc3d.models.segmenter`, e.g. :class:`pc3d.models.meepo.MEEPO`,
:class:`pc3d.models.ptv3.PTv3`): ``model(batch) -> out``, ``model.loss(out, batch)`` (its criterion:
CE + Lovász), ``model.predict(out, batch)``. Batches are :class:`pc3d.data.batch.PointBatch` from
``pc3d.data.scannet.ScanNetDataModule(task="seg")``: ``point["segment"]`` labels, ``point["grid_coord"]``;
validation clouds may carry ``origin["inverse"]``/``origin["segment"]`` (scored at full resolution);
test batches are the fragments of a scene with ``point["index"]`` (original point ids) and
``meta["num_points"]`` (voting: :mod:`pc3d.tasks.seg_voting`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from jsonargparse import lazy_instance
from lightning.pytorch.cli import OptimizerCallable
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn

from pc3d.data.batch import PointBatch
from pc3d.metrics.segmentation import SegmentationMetric, format_class_table
from pc3d.tasks.hparams import legacy_segmentation_loss, save_task_hyperparameters
from pc3d.tasks.interface import check_class_names, check_model_interface
from pc3d.tasks.schedules import OneCycle, Schedule
from pc3d.tasks.seg_voting import tta_views, vote


class SegmentationModule(L.LightningModule):
    """Semantic segmentation task.

    Args:
        model: segmentation network (see module docstring); its ``ignore_index`` (default -1) is the
            label the metrics skip.
        num_classes: classes of the logits (default: ``model.num_classes``).
        class_names: names for the per-class IoU table, one per class (``pc3d fit`` passes the
            datamodule's ``class_names``).
        optimizer: called with the parameter groups (``[{"params": other}, {"params": block}]``) to
            make the optimizer; in YAML ``class_path: torch.optim.AdamW`` with ``init_args`` (default:
            AdamW lr 0.006, weight decay 0.05, as Pointcept ScanNet).
        block_lr_scale: learning-rate factor for parameters whose name matches ``block_lr_pattern``
            (Pointcept: 0.1 for the transformer/mixer blocks): their group's ``lr`` is the optimizer's
            times this factor.
        block_lr_pattern: regex on parameter names selecting the block parameters.
        scheduler: a :class:`pc3d.tasks.schedules.Schedule`: :class:`~pc3d.tasks.schedules.OneCycle`
            (default, Pointcept's pct_start 0.05, div 10, final div 1000) or
            :class:`~pc3d.tasks.schedules.Cosine`, per step over the ``max_steps``/``max_epochs``
            budget (``max_time`` is a safety stop they never read); or ``None`` (constant learning rate).
        tta_rotations: test-time z-rotations in multiples of pi (Pointcept: 0, 0.5, 1, 1.5).
        tta_scales: test-time scales (Pointcept: 1, 0.95, 1.05).
        tta_flip: add one x-mirrored view.
        test_clouds_per_forward: test fragments packed into one forward pass.
        print_class_table: print the per-class IoU table at the end of validation/test epochs.
    """

    def __init__(
        self,
        model: nn.Module,
        num_classes: int | None = None,
        class_names: Sequence[str] | None = None,
        optimizer: OptimizerCallable = lambda params: torch.optim.AdamW(params, lr=0.006, weight_decay=0.05),
        block_lr_scale: float = 0.1,
        block_lr_pattern: str = r"(^|\.)(enc|dec)\.\d+\.\d+\.",
        scheduler: Schedule | None = lazy_instance(OneCycle),
        tta_rotations: Sequence[float] = (0.0,),
        tta_scales: Sequence[float] = (1.0,),
        tta_flip: bool = False,
        test_clouds_per_forward: int = 1,
        print_class_table: bool = True,
    ) -> None:
        super().__init__()
        if scheduler is not None and not isinstance(scheduler, Schedule):
            raise ValueError(
                f"scheduler: expected a pc3d.tasks.schedules.Schedule (e.g. OneCycle) or None, got {scheduler!r}"
            )
        num_classes = num_classes if num_classes is not None else getattr(model, "num_classes", None)
        if not num_classes or num_classes < 1:
            raise ValueError("num_classes: give it, or use a model with a positive num_classes attribute")
        check_class_names(class_names, num_classes, model)
        if not tta_rotations or not tta_scales or test_clouds_per_forward < 1:
            raise ValueError(
                "tta_rotations/tta_scales: need at least one value; test_clouds_per_forward >= 1"
            )
        re.compile(block_lr_pattern)
        check_model_interface(model)
        save_task_hyperparameters(self, ("model", "optimizer", "scheduler"))
        self.model = model
        self.optimizer, self.scheduler = optimizer, scheduler
        self.num_classes = num_classes
        self.class_names = list(class_names) if class_names is not None else None
        self.ignore_index = int(getattr(model, "ignore_index", -1))
        self.val_metric = SegmentationMetric(num_classes, self.ignore_index)
        self.test_metric = SegmentationMetric(num_classes, self.ignore_index)
        self.views = tta_views(tta_rotations, tta_scales, tta_flip)

    # ------------------------------------------------------------------ model
    def forward(self, batch: PointBatch) -> Any:
        return self.model(batch)

    def _pred(self, out: Any, batch: PointBatch) -> Tensor:
        """Packed predicted classes ``(N,)`` of the batch's points."""
        return torch.cat([r["pred"] for r in self.model.predict(out, batch)])

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse a checkpoint whose task-level loss settings (older layout) the network's criterion
        lacks: Lightning's ``load_from_checkpoint`` would drop them silently."""
        legacy = legacy_segmentation_loss(checkpoint.get("hyper_parameters") or {})
        criterion = getattr(self.model, "criterion", None)
        lost = {k: v for k, v in legacy.items() if getattr(criterion, k, None) != v}
        if lost:
            raise ValueError(
                f"checkpoint: its SegmentationModule held the loss settings {lost}, which are the "
                "network's criterion today; load it with pc3d.load_model, `pc3d infer` or --ckpt_path, "
                "which move them to model.criterion"
            )

    # ------------------------------------------------------------------ steps
    def training_step(self, batch: PointBatch, batch_idx: int) -> Tensor:
        out = self.model(batch)
        losses = self.model.loss(out, batch)
        n = batch.num_clouds
        for k, v in losses.items():
            self.log(f"train/{k}", v, prog_bar=k == "loss", batch_size=n)
        target = batch.point["segment"].long()
        keep = target != self.ignore_index
        if bool(keep.any()):
            acc = (self._pred(out, batch)[keep] == target[keep]).float().mean()
            self.log("train/acc", acc, prog_bar=True, batch_size=n)
        return losses["loss"]

    def validation_step(self, batch: PointBatch, batch_idx: int) -> None:
        out = self.model(batch)
        losses = self.model.loss(out, batch)
        self.log("val/loss", losses["loss"], batch_size=batch.num_clouds, sync_dist=True)
        pred = self._pred(out, batch)
        if "inverse" in batch.origin and "segment" in batch.origin:  # every original point, full resolution
            self.val_metric.update(pred[batch.origin["inverse"]], batch.origin["segment"])
        else:
            self.val_metric.update(pred, batch.point["segment"].long())

    def vote(self, batch: PointBatch) -> list[dict[str, Any]]:
        """Scene-level probabilities summed over fragments and the task's views
        (:func:`pc3d.tasks.seg_voting.vote`): ``meta``, ``probs (N_orig, C)``, ``segment``, ``origin``."""
        return vote(
            self.model,
            batch,
            self.views,
            self.hparams.test_clouds_per_forward,
            self.num_classes,
            self.ignore_index,
        )

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
            meta, origin = scene["meta"], scene["origin"]
            record: dict[str, Any] = {
                "meta": {k: v for k, v in meta.items() if isinstance(v, (str, int, float, bool))},
                "pred": scene["probs"].argmax(1).cpu(),
                "class_names": list(self.class_names or [f"class_{i}" for i in range(self.num_classes)]),
            }
            for key in ("coord", "color"):
                if key in origin:
                    record[key] = origin[key].cpu()
            if scene["segment"] is not None:
                record["segment"] = scene["segment"].cpu()
            records.append(record)
        return records

    @torch.no_grad()
    def viz_samples(self, batch: PointBatch, outputs: Any = None) -> list[dict[str, Any]]:
        """Clouds of a validation batch for ``pc3d.viz.callback.RenderValidationScenes``:
        ``coord``, ``segment``, ``pred`` (of one forward pass), ``class_names`` and ``name``."""
        pred = self._pred(self.model(batch), batch)
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
