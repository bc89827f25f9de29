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


def save_task_hyperparameters(module: L.LightningModule, network_arg: str = "model") -> None:
    """``module.save_hyperparameters(ignore=[network_arg])``, keeping the network's configuration.

    The network (an ``nn.Module`` argument) is not saved as an object. When LightningCLI built the
    module, its configuration ``{"class_path": ..., "init_args": {...}}`` is stored under
    ``hparams[network_arg]``, so a checkpoint can rebuild the whole task (``pc3d.load_model``).
    Must be called from the module's ``__init__``.
    """
    frame = inspect.currentframe().f_back
    module.save_hyperparameters(ignore=[network_arg], frame=frame)
    given = _cli_hyperparameters()
    network = given.get(network_arg) if isinstance(given, dict) else None
    if isinstance(network, dict) and "class_path" in network:
        module.hparams[network_arg] = {
            "class_path": network["class_path"],
            "init_args": dict(network.get("init_args") or {}),
        }
