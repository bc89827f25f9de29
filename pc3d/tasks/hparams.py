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
