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


def upgrade_hyperparameters(hparams: dict[str, Any]) -> dict[str, Any]:
    """Hyper-parameters of an older detection task (``metric: "kitti"``, ``iou_thresholds``) in today's
    form (``metric: {class_path: ...}``); others unchanged."""
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
