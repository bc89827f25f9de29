"""Hyper-parameters of a task, including its network's configuration when LightningCLI built it."""

from __future__ import annotations

import inspect
from typing import Any

import lightning as L


def _cli_hyperparameters() -> dict[str, Any] | None:
    """The configuration LightningCLI hands the module it is instantiating (``None`` outside it)."""
    try:
        from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters
    except ImportError:  # a Lightning without CLI-given hyper-parameters
        return None
    return _given_hyperparameters.get()


def save_task_hyperparameters(module: L.LightningModule, object_args: tuple[str, ...] = ("model",)) -> None:
    """``module.save_hyperparameters(ignore=object_args)``, keeping those objects' configurations.

    The object arguments (the network, a metric: ``nn.Module``s) are not saved as objects. When
    LightningCLI built the module, each one's configuration ``{"class_path": ..., "init_args": {...}}``
    is stored under ``hparams[name]``, so a checkpoint can rebuild the whole task
    (``pc3d.load_model``) and holds plain data only. Must be called from the module's ``__init__``.
    """
    frame = inspect.currentframe().f_back
    module.save_hyperparameters(ignore=list(object_args), frame=frame)
    given = _cli_hyperparameters()
    for name in object_args:
        spec = given.get(name) if isinstance(given, dict) else None
        if isinstance(spec, dict) and "class_path" in spec:
            module.hparams[name] = {
                "class_path": spec["class_path"],
                "init_args": dict(spec.get("init_args") or {}),
            }


#: detection metrics that older checkpoints name by string, and the classes that replaced them
_LEGACY_METRICS = {"indoor": "pc3d.metrics.IndoorMAP", "kitti": "pc3d.metrics.KittiMetric", "none": None}


#: loss settings an older ``SegmentationModule`` took itself, now its network's ``criterion`` arguments
_LEGACY_SEG_LOSS = {"ce_weight": 1.0, "lovasz_weight": 1.0, "label_smoothing": 0.0, "ignore_index": -1}
_SEG_CRITERION = "pc3d.models.losses.SegmentationLoss"


def upgrade_hyperparameters(hparams: dict[str, Any]) -> dict[str, Any]:
    """Hyper-parameters of an older task in today's form; others unchanged.

    - detection: ``metric: "kitti"`` and ``iou_thresholds`` become ``metric: {class_path: ...}``;
    - segmentation: the task-level ``ce_weight``, ``lovasz_weight``, ``label_smoothing`` and
      ``ignore_index`` move to the network's ``criterion``
      (``model.init_args.criterion: {class_path: pc3d.models.losses.SegmentationLoss, ...}``, only when
      one differs from its default); the unused ``color_in_feat`` is dropped.

    Raises:
        ValueError: non-default segmentation loss settings without a recorded network configuration.
    """
    return _upgrade_segmentation(_upgrade_detection_metric(hparams))


def _upgrade_detection_metric(hparams: dict[str, Any]) -> dict[str, Any]:
    metric = hparams.get("metric")
    if not isinstance(metric, str) or metric not in _LEGACY_METRICS:
        return hparams
    hparams = dict(hparams)
    thresholds = hparams.pop("iou_thresholds", None)
    class_path = _LEGACY_METRICS[metric]
    if class_path is None:
        hparams["metric"] = None
    else:
        init_args = {"iou_thresholds": list(thresholds)} if metric == "indoor" and thresholds else {}
        hparams["metric"] = {"class_path": class_path, "init_args": init_args}
    return hparams


def legacy_segmentation_loss(hparams: dict[str, Any]) -> dict[str, Any]:
    """The task-level loss settings of an older segmentation checkpoint that differ from the defaults."""
    return {
        k: hparams[k] for k, default in _LEGACY_SEG_LOSS.items() if k in hparams and hparams[k] != default
    }


def _upgrade_segmentation(hparams: dict[str, Any]) -> dict[str, Any]:
    if not any(k in hparams for k in (*_LEGACY_SEG_LOSS, "color_in_feat")):
        return hparams
    changed = legacy_segmentation_loss(hparams)
    hparams = {k: v for k, v in hparams.items() if k not in _LEGACY_SEG_LOSS and k != "color_in_feat"}
    if not changed:
        return hparams
    model = hparams.get("model")
    if not isinstance(model, dict) or "class_path" not in model:
        raise ValueError(
            f"hyper_parameters: the segmentation loss settings {changed} belong to the network's criterion "
            "today, and this checkpoint does not record its network's configuration"
        )
    init_args = dict(model.get("init_args") or {})
    init_args["criterion"] = {"class_path": _SEG_CRITERION, "init_args": changed}
    hparams["model"] = {**model, "init_args": init_args}
    return hparams
