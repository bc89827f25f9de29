"""Keep ``<dirpath>/last.ckpt`` holding the latest training state, so that ``--ckpt_path last`` resumes it."""

from __future__ import annotations

import os
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Checkpoint

from pc3d.io import clean_leftovers


class LastCheckpoint(Checkpoint):
    """Write ``last.ckpt`` at the end of every training epoch, at the end of ``fit`` and, when
    ``every_n_train_steps > 0``, every that many optimizer steps.

    The epoch-end save does not depend on validation (``check_val_every_n_epoch``): it happens
    after the epoch's validation, if any, so the file always holds the newest weights, optimizer,
    scheduler and loop state. Each write replaces the previous ``last.ckpt``.

    Args:
        dirpath: folder of ``last.ckpt``; default ``<trainer.default_root_dir>/checkpoints``.
        every_n_train_steps: also save every this many optimizer steps (0: only at epoch ends and
            at the end of fit). A save in the middle of an epoch resumes that epoch from its
            start position in the data unless the dataloader is resumable (has ``state_dict``).
    """

    FILE_NAME = "last.ckpt"

    def __init__(self, dirpath: str | os.PathLike | None = None, every_n_train_steps: int = 0) -> None:
        if isinstance(every_n_train_steps, bool) or not isinstance(every_n_train_steps, int):
            raise ValueError(f"every_n_train_steps must be an integer >= 0, got {every_n_train_steps!r}")
        if every_n_train_steps < 0:
            raise ValueError(f"every_n_train_steps must be >= 0, got {every_n_train_steps}")
        self.dirpath = None if dirpath is None else os.fspath(dirpath)
        self.every_n_train_steps = every_n_train_steps
        self.last_model_path = ""
        self.best_model_path = ""  # no metric is monitored: "best" is not defined
        self._saved_at: tuple[int, int] | None = None

    @property
    def state_key(self) -> str:
        # One per trainer; a constant key lets a run resume from a checkpoint written in another folder.
        return "LastCheckpoint"

    def path(self, trainer: pl.Trainer | None = None) -> str:
        """``last.ckpt`` of this callback (``trainer`` resolves the default folder before ``setup``)."""
        dirpath = self.dirpath
        if dirpath is None:
            root = trainer.default_root_dir if trainer is not None else "."
            dirpath = os.path.join(root, "checkpoints")
        return os.path.join(dirpath, self.FILE_NAME)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self.dirpath is None:
            self.dirpath = os.path.dirname(self.path(trainer))
        self.dirpath = trainer.strategy.broadcast(self.dirpath)
        if trainer.is_global_zero and os.path.isdir(self.dirpath):
            clean_leftovers(self.dirpath)  # temporaries of a run killed while writing last.ckpt

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        from lightning.pytorch.callbacks import ModelCheckpoint

        for other in trainer.checkpoint_callbacks:
            if isinstance(other, ModelCheckpoint) and other.save_last and other.dirpath is not None:
                if os.path.abspath(other.dirpath) == os.path.abspath(self.dirpath or ""):
                    raise ValueError(
                        f"trainer.callbacks: ModelCheckpoint(save_last={other.save_last!r}) would also write "
                        f"last*.ckpt in {self.dirpath}, where LastCheckpoint keeps last.ckpt; set its "
                        "save_last: false (last.ckpt is always written) or give it another dirpath"
                    )

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        n = self.every_n_train_steps
        if n and trainer.global_step > 0 and trainer.global_step % n == 0:
            self._save(trainer)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._save(trainer, force=True)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._save(trainer)

    def _save(self, trainer: pl.Trainer, force: bool = False) -> None:
        if trainer.fast_dev_run or trainer.sanity_checking:
            return
        key = (trainer.current_epoch, trainer.global_step)
        if not force and self._saved_at == key:
            return
        self.last_model_path = self.path(trainer)
        trainer.save_checkpoint(self.last_model_path, weights_only=False)
        self._saved_at = key

    def state_dict(self) -> dict[str, Any]:
        return {"dirpath": self.dirpath, "last_model_path": self.last_model_path}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("dirpath") == self.dirpath:
            self.last_model_path = state_dict.get("last_model_path", "")
