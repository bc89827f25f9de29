"""3D object detection task: losses, metrics and optimiser recipe around a detector ``nn.Module``."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from jsonargparse import lazy_instance
from lightning.pytorch.cli import OptimizerCallable
from torch import Tensor, nn

from pc3d.data.batch import MissingField, PointBatch
from pc3d.metrics.detection import DetectionMetric
from pc3d.tasks.hparams import save_task_hyperparameters
from pc3d.tasks.interface import check_class_names, check_model_interface
from pc3d.tasks.schedules import MultiStep, Schedule


class DetectionModule(L.LightningModule):
    """LightningModule for detectors with ``forward(batch)``, ``loss(out, batch)``, ``predict(out, batch)``
    (e.g. :class:`~pc3d.models.pointformer_votenet.PointformerVoteNet`).

    Args:
        model: the detector.
        class_names: names of the detection classes (used for logging per-class AP), one per class of
            the network (``pc3d fit`` passes the datamodule's ``class_names``).
        metric: the validation and test metric, a :class:`~pc3d.metrics.DetectionMetric` (each split
            gets its own copy): :class:`~pc3d.metrics.IndoorMAP` (VOC all-point mAP with axis-aligned 3D
            IoU, as in ScanNet / SUN RGB-D), :class:`~pc3d.metrics.KittiMetric` (official KITTI AP
            R11/R40 for bbox/bev/3d per difficulty, logged as ``{stage}/{class}/3d_R40_moderate`` etc.;
            needs ``meta["annos"]``, ``meta["calib"]``, ``meta["image_size"]`` as given by
            ``KittiDataModule``) or ``None`` (losses only).
        optimizer: called with the trainable parameters to make the optimizer; in YAML
            ``class_path: torch.optim.AdamW`` with ``init_args``. Default: the official Pointformer
            ScanNet recipe, AdamW lr 2e-3, weight decay 0.1 (with step decay x0.3 at epochs 32 and 40
            over 48 epochs and grad clip 10 via the trainer's ``gradient_clip_val``).
        scheduler: a :class:`pc3d.tasks.schedules.Schedule`: :class:`~pc3d.tasks.schedules.MultiStep`
            (default: milestones 32 and 40, gamma 0.3, per epoch), :class:`~pc3d.tasks.schedules.Cosine`
            (per step, to 0 over the ``max_steps``/``max_epochs`` budget) or ``None`` (constant learning
            rate). ``max_time`` is a safety stop the schedules never read.

    Dataset facts the network needs (VoteNet's per-class ``mean_sizes``) are arguments of the network,
    given in the config; the class names are the datamodule's (linked by ``pc3d``).

    ``predict_step`` returns one dict per cloud in the prediction-file format: ``coord (N,3)``,
    ``boxes_pred (K,7)``, ``scores_pred (K,)``, ``labels_pred (K,)`` in the batch's coordinate frame (the
    dataset's own frame: aligned ScanNet frame, KITTI LiDAR frame), ``boxes_gt``/``labels_gt`` when the
    batch has ground truth, ``class_names`` and the cloud's ``meta``.
    """

    def __init__(
        self,
        model: nn.Module,
        class_names: Sequence[str] | None = None,
        metric: DetectionMetric | None = None,
        optimizer: OptimizerCallable = lambda params: torch.optim.AdamW(params, lr=2e-3, weight_decay=0.1),
        scheduler: Schedule | None = lazy_instance(MultiStep),
    ) -> None:
        super().__init__()
        if metric is not None and not isinstance(metric, DetectionMetric):
            raise ValueError(
                f"metric: expected a pc3d.metrics.DetectionMetric (e.g. pc3d.metrics.KittiMetric) or None, "
                f"got {metric!r}"
            )
        if not callable(optimizer):
            raise ValueError(
                f"optimizer: expected a callable making the optimizer from parameters, got {optimizer!r}"
            )
        if scheduler is not None and not isinstance(scheduler, Schedule):
            raise ValueError(
                f"scheduler: expected a pc3d.tasks.schedules.Schedule (e.g. MultiStep) or None, got {scheduler!r}"
            )
        check_model_interface(model)
        save_task_hyperparameters(self, ("model", "metric", "optimizer", "scheduler"))
        self.model = model
        self.optimizer, self.scheduler = optimizer, scheduler
        num_classes = getattr(model, "num_classes", None)
        check_class_names(class_names, num_classes, model)
        self.class_names = list(class_names) if class_names is not None else None
        self.val_metric = self.test_metric = None
        if metric is not None:
            names = self.class_names
            if names is None and num_classes is not None:
                names = [str(c) for c in range(num_classes)]
            if names is None:
                raise ValueError(
                    "class_names: the metric needs the class names (or a model with num_classes)"
                )
            self.val_metric, self.test_metric = copy.deepcopy(metric), copy.deepcopy(metric)
            self.val_metric.bind(names)
            self.test_metric.bind(names)

    def forward(self, batch: PointBatch) -> dict[str, Any]:
        return self.model(batch)

    # ------------------------------------------------------------------ steps
    def _log_losses(self, losses: dict[str, Tensor], stage: str, batch: PointBatch) -> None:
        bs = batch.num_clouds
        self.log(f"{stage}/loss", losses["loss"], prog_bar=True, batch_size=bs, sync_dist=stage != "train")
        for k, v in losses.items():
            if k != "loss":
                self.log(f"{stage}/loss_{k}", v, batch_size=bs, sync_dist=stage != "train")

    def training_step(self, batch: PointBatch, batch_idx: int) -> Tensor:
        out = self.model(batch)
        losses = self.model.loss(out, batch)
        self._log_losses(losses, "train", batch)
        return losses["loss"]

    def _eval_step(self, batch: PointBatch, stage: str) -> None:
        out = self.model(batch)
        if batch.boxes is not None:
            try:
                self._log_losses(self.model.loss(out, batch), stage, batch)
            except MissingField:  # a labelled split without the training targets: metrics only
                pass
        metric = self.val_metric if stage == "val" else self.test_metric
        if metric is not None:
            metric.update(self.model.predict(out, batch), batch)

    def validation_step(self, batch: PointBatch, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: PointBatch, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def _log_metric(self, metric: DetectionMetric | None, stage: str) -> None:
        if metric is None:
            return
        for name, value in metric.compute().items():
            self.log(f"{stage}/{name}", value, prog_bar=name in metric.progress_bar, sync_dist=False)
        metric.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_metric(self.val_metric, "val")

    def on_test_epoch_end(self) -> None:
        self._log_metric(self.test_metric, "test")

    def predict_step(
        self, batch: PointBatch, batch_idx: int, dataloader_idx: int = 0
    ) -> list[dict[str, Any]]:
        out = self.model(batch)
        preds = self.model.predict(out, batch)
        metas = batch.meta if batch.meta else [{} for _ in preds]
        coords = batch.split(batch.coord)
        gt_boxes = gt_labels = None
        if batch.boxes is not None and batch.box_labels is not None and batch.box_offsets is not None:
            gt_boxes, gt_labels = batch.split_boxes(batch.boxes), batch.split_boxes(batch.box_labels)
        res = []
        for i, (p, m) in enumerate(zip(preds, metas)):
            item: dict[str, Any] = {
                "coord": coords[i].detach().cpu(),
                "boxes_pred": p["boxes"].detach().cpu(),
                "scores_pred": p["scores"].detach().cpu(),
                "labels_pred": p["labels"].detach().cpu(),
                "meta": m,
            }
            if gt_boxes is not None:
                item["boxes_gt"], item["labels_gt"] = gt_boxes[i].detach().cpu(), gt_labels[i].detach().cpu()
            if self.class_names is not None:
                item["class_names"] = list(self.class_names)
            res.append(item)
        return res

    @torch.no_grad()
    def viz_samples(self, batch: PointBatch, outputs: Any = None) -> list[dict[str, Any]]:
        """Clouds of a validation batch for ``pc3d.viz.callback.RenderValidationScenes``: the
        prediction records of :meth:`predict_step` without ``meta``, named by scene/frame id."""
        samples = []
        for i, record in enumerate(self.predict_step(batch, 0)):
            meta = record.pop("meta", None) or {}
            record["name"] = str(meta.get("scene_id", meta.get("frame_id", i)))
            samples.append(record)
        return samples

    # ------------------------------------------------------------------ optimiser
    def configure_optimizers(self) -> Any:
        opt = self.optimizer([p for p in self.model.parameters() if p.requires_grad])
        if self.scheduler is None:
            return opt
        return {"optimizer": opt, "lr_scheduler": self.scheduler.lr_scheduler_config(opt, self._trainer)}
