"""Hyper-parameters of a task, including its network's configuration when LightningCLI built it."""

from __future__ import annotations

import copy
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


#: optimizers that older detection checkpoints name by string
_LEGACY_OPTIMIZERS = {"adamw": "torch.optim.AdamW", "adam": "torch.optim.Adam", "sgd": "torch.optim.SGD"}


def _legacy_optimizer(hparams: dict[str, Any], detection: bool) -> dict[str, Any]:
    name = hparams.pop("optimizer", "adamw") if detection else "adamw"
    if name not in _LEGACY_OPTIMIZERS:
        raise ValueError(
            f"hyper-parameters: unknown legacy optimizer {name!r}; expected one of {sorted(_LEGACY_OPTIMIZERS)}"
        )
    lr = hparams.pop("lr", 2e-3 if detection else 0.006)
    weight_decay = hparams.pop("weight_decay", 0.1 if detection else 0.05)
    betas = list(hparams.pop("betas", (0.9, 0.999)))
    init_args: dict[str, Any] = {"lr": lr, "weight_decay": weight_decay}
    if name == "sgd":
        init_args["momentum"] = betas[0]
    else:
        init_args["betas"] = betas
    return {"class_path": _LEGACY_OPTIMIZERS[name], "init_args": init_args}


def _legacy_scheduler(hparams: dict[str, Any], detection: bool) -> dict[str, Any] | None:
    schedule = hparams.pop("schedule")
    milestones, gamma = hparams.pop("milestones", (32, 40)), hparams.pop("gamma", 0.3)
    onecycle = {k: hparams.pop(k) for k in ("pct_start", "div_factor", "final_div_factor") if k in hparams}
    if schedule == "none":
        return None
    if schedule == "cosine":
        return {"class_path": "pc3d.tasks.schedules.Cosine", "init_args": {}}
    if schedule == "step" and detection:
        return {
            "class_path": "pc3d.tasks.schedules.MultiStep",
            "init_args": {"milestones": list(milestones), "gamma": gamma},
        }
    if schedule == "onecycle" and not detection:
        return {"class_path": "pc3d.tasks.schedules.OneCycle", "init_args": onecycle}
    raise ValueError(f"hyper-parameters: unknown legacy schedule {schedule!r}")


def _is_detection(hparams: dict[str, Any]) -> bool:
    class_path = str(hparams.get("_class_path", ""))
    if class_path:
        return class_path.endswith("DetectionModule")
    return "milestones" in hparams or isinstance(hparams.get("optimizer"), str)


def upgrade_hyperparameters(hparams: dict[str, Any]) -> dict[str, Any]:
    """Hyper-parameters of an older task in today's form; others unchanged.

    - Detection metrics by string (``metric: "kitti"``, ``iou_thresholds``) become metric objects
      (``metric: {class_path: ...}``).
    - The optimiser by settings (``optimizer: "adamw"``, ``lr``, ``weight_decay``, ``betas``) becomes an
      optimizer callable (``optimizer: {class_path: torch.optim.AdamW, init_args: ...}``), and the
      schedule by name (``schedule: "step"/"cosine"/"onecycle"/"none"`` with ``milestones``, ``gamma``,
      ``pct_start``, ``div_factor``, ``final_div_factor``) a :class:`pc3d.tasks.schedules.Schedule`
      (``scheduler: {class_path: pc3d.tasks.schedules.MultiStep, ...}`` or ``None``), giving the same
      learning rates step by step. ``mean_sizes_from_data`` is dropped: the head's ``mean_sizes`` are
      its own argument (a VoteNet head configured without them, from when ScanNet's were the default,
      gets those; the trained values are the ``mean_sizes`` buffer of the state dict).
    - Segmentation: the task-level ``ce_weight``, ``lovasz_weight``, ``label_smoothing`` and
      ``ignore_index`` move to the network's ``criterion``
      (``model.init_args.criterion: {class_path: pc3d.models.losses.SegmentationLoss, ...}``, only when
      one differs from its default); the unused ``color_in_feat`` is dropped.

    Raises:
        ValueError: a legacy optimiser or schedule name that never existed, or non-default segmentation
            loss settings without a recorded network configuration (one line).
    """
    hparams = dict(hparams)
    metric = hparams.get("metric")
    if isinstance(metric, str) and metric in _LEGACY_METRICS:
        thresholds = hparams.pop("iou_thresholds", None)
        class_path = _LEGACY_METRICS[metric]
        if class_path is None:
            hparams["metric"] = None
        else:
            init_args = {"iou_thresholds": list(thresholds)} if metric == "indoor" and thresholds else {}
            hparams["metric"] = {"class_path": class_path, "init_args": init_args}
    if "schedule" in hparams and "scheduler" not in hparams:
        detection = _is_detection(hparams)
        hparams.pop("mean_sizes_from_data", None)
        hparams["scheduler"] = _legacy_scheduler(hparams, detection)
        hparams["optimizer"] = _legacy_optimizer(hparams, detection)
    model = copy.deepcopy(hparams.get("model"))
    head = _votenet_head(model)
    if head is not None and "mean_sizes" not in head["init_args"]:
        from pc3d.data.scannet.classes import SCANNET_DET_MEAN_SIZES

        head["init_args"]["mean_sizes"] = [list(m) for m in SCANNET_DET_MEAN_SIZES]
        hparams["model"] = model
    return _upgrade_segmentation(hparams)


def _votenet_head(model: Any) -> dict[str, Any] | None:
    """The VoteNet head's configuration ``{class_path, init_args}`` in a network's, if it has one."""
    if not isinstance(model, dict) or not isinstance(model.get("init_args"), dict):
        return None
    head = model["init_args"].get("head")
    if not isinstance(head, dict) or not str(head.get("class_path", "")).endswith("VoteNetHead"):
        return None
    head.setdefault("init_args", {})
    return head if isinstance(head["init_args"], dict) else None


def upgrade_datamodule_hyperparameters(hparams: dict[str, Any]) -> dict[str, Any]:
    """Init arguments of an older datamodule in today's form: ``ScanNetDataModule`` no longer takes
    ``mean_sizes`` (the VoteNet head does); others unchanged."""
    if str(hparams.get("_class_path", "")).endswith("ScanNetDataModule") and "mean_sizes" in hparams:
        hparams = {k: v for k, v in hparams.items() if k != "mean_sizes"}
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
