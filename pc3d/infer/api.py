"""``pc3d.load_model``: a predictor for a checkpoint, picked by what the checkpoint was trained on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pc3d.infer.checkpoint import CheckpointError, TrainedTask, load_trained_task


def task_kind(task: TrainedTask) -> str:
    """What a checkpoint predicts: ``"segmentation"`` (ScanNet datamodule, ``task="seg"``),
    ``"indoor-detection"`` (ScanNet datamodule, ``task="det"``: VoteNet boxes in rooms) or
    ``"detection"`` (KITTI datamodule: boxes in LiDAR sweeps).

    Raises:
        CheckpointError: any other datamodule.
    """
    from pc3d.data.kitti import KittiDataModule
    from pc3d.data.scannet import ScanNetDataModule

    dm = task.datamodule
    if isinstance(dm, ScanNetDataModule) and dm.task == "seg":
        return "segmentation"
    if isinstance(dm, ScanNetDataModule) and dm.task == "det":
        return "indoor-detection"
    if isinstance(dm, KittiDataModule):
        return "detection"
    detail = f" (task={dm.task!r})" if hasattr(dm, "task") else ""
    raise CheckpointError(
        f"--ckpt {task.path}: inference supports ScanNet segmentation and detection and KITTI detection "
        f"checkpoints; this one was trained with {type(dm).__name__}{detail}"
    )


def predictor_for(task: TrainedTask, device: str = "cpu", **options: Any):
    """The predictor of a loaded checkpoint, by :func:`task_kind` (see :func:`load_model`)."""
    kind = task_kind(task)
    if kind == "segmentation":
        from pc3d.infer.segment import SegmentationPredictor

        return SegmentationPredictor(task, device=device, **options)
    if kind == "indoor-detection":
        from pc3d.infer.detect_indoor import IndoorDetectionPredictor

        return IndoorDetectionPredictor(task, device=device, **options)
    from pc3d.infer.detect import DetectionPredictor

    return DetectionPredictor(task, device=device, **options)


def load_model(ckpt: str | Path, device: str = "cpu", **options: Any):
    """Load a ``pc3d fit`` checkpoint for inference.

    Returns, by what the checkpoint was trained on (:func:`task_kind`):

    - :class:`~pc3d.infer.segment.SegmentationPredictor` (ScanNet-datamodule segmentation;
      options ``tile_points``, ``overlap``, ``missing_color``, ``normal_radius``);
    - :class:`~pc3d.infer.detect_indoor.IndoorDetectionPredictor` (ScanNet-datamodule detection,
      VoteNet boxes in axis-aligned rooms; option ``missing_color``; ``predict(points, colors=None,
      axis_align=None)``);
    - :class:`~pc3d.infer.detect.DetectionPredictor` (KITTI-datamodule detection; option
      ``missing_intensity``).

    Each has ``kind``, ``predict(points, ...)``, ``class_names`` and ``describe()``.

    Example::

        model = pc3d.load_model("last.ckpt")
        result = model.predict(points, colors=colors)   # points (N, 3), colors (N, 3) uint8
        result.labels                                   # segmentation: (N,) indices into model.class_names
        result.boxes, result.scores                     # detection: (P, 7) boxes and (P,) scores

    Raises:
        CheckpointError: unreadable checkpoint, or one without the configuration inference needs.
    """
    return predictor_for(load_trained_task(ckpt, map_location="cpu"), device=device, **options)
