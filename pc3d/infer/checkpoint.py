"""Rebuild a trained task and its data configuration from a ``pc3d fit`` checkpoint.

A checkpoint written by ``pc3d fit`` holds the task's hyper-parameters with its network's
configuration (``hyper_parameters``, see :func:`pc3d.tasks.hparams.save_task_hyperparameters`)
and the datamodule's (``datamodule_hyper_parameters``): class paths and every init argument.
Both are instantiated again here, so inference uses the very classes and settings of training.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import lightning as L

from pc3d.checkpoint import CheckpointError, load_checkpoint
from pc3d.infer.cloud import InputError
from pc3d.tasks.hparams import upgrade_datamodule_hyperparameters, upgrade_hyperparameters


@dataclasses.dataclass
class TrainedTask:
    """What a checkpoint holds: the task (weights loaded, eval mode), the datamodule object
    (configuration only; it reads no data) and the file it came from."""

    module: L.LightningModule
    datamodule: L.LightningDataModule
    path: Path


def _instantiate(base: type, hparams: dict[str, Any], what: str, path: Path) -> Any:
    from jsonargparse import ArgumentParser

    init_args = {k: v for k, v in hparams.items() if not k.startswith("_")}
    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(base, "obj", fail_untyped=False, required=True)
    try:
        cfg = parser.parse_object({"obj": {"class_path": hparams["_class_path"], "init_args": init_args}})
        return parser.instantiate(cfg).obj
    except Exception as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"--ckpt {path}: cannot rebuild the {what} {hparams['_class_path']} ({first[:300]})"
        ) from err


def load_trained_task(path: str | Path, map_location: str = "cpu") -> TrainedTask:
    """Task with weights and datamodule configuration of the checkpoint at ``path``.

    Raises:
        CheckpointError: the checkpoint lacks the network or datamodule configuration (written
            by an older pc3d, or by a task built in Python), or its weights do not fit.
    """
    path = Path(path)
    ckpt = load_checkpoint(path, map_location)
    hp = ckpt.get("hyper_parameters") or {}
    dhp = ckpt.get("datamodule_hyper_parameters") or {}
    if "_class_path" not in hp or not isinstance(hp.get("model"), dict):
        raise CheckpointError(
            f"--ckpt {path}: does not record its network's configuration (hyper_parameters['model']); "
            "it was written by an older pc3d or by a task built in Python. Train it again with `pc3d fit`."
        )
    if "_class_path" not in dhp:
        raise CheckpointError(
            f"--ckpt {path}: does not record its datamodule's configuration "
            "(datamodule_hyper_parameters), so the test-time preprocessing is unknown; it was written "
            "by an older pc3d. Train it again with `pc3d fit`."
        )
    module = _instantiate(L.LightningModule, upgrade_hyperparameters(hp), "task", path)
    datamodule = _instantiate(
        L.LightningDataModule, upgrade_datamodule_hyperparameters(dhp), "datamodule", path
    )
    try:
        module.load_state_dict(ckpt["state_dict"], strict=True)
    except RuntimeError as err:
        lines = str(err).strip().splitlines()
        raise CheckpointError(
            f"--ckpt {path}: weights do not fit the network ({' '.join(lines[:2])[:300]})"
        ) from err
    module.eval()
    return TrainedTask(module=module, datamodule=datamodule, path=path)


__all__ = ["CheckpointError", "InputError", "TrainedTask", "load_trained_task"]
