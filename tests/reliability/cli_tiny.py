"""A tiny deterministic task and datamodule for driving ``pc3d`` end to end in a few seconds.

Importable by ``pc3d`` subprocesses when this folder is on ``PYTHONPATH`` (see :func:`tiny_env`).
``TINY_KILL_AT_STEP=k`` makes the training process SIGKILL itself when optimizer step ``k`` starts.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent


class TinyTask(pl.LightningModule):
    """Linear regression ``(B, 4) -> (B, 1)`` with SGD + momentum (optimizer state matters on resume)."""

    def __init__(self, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.layer = nn.Linear(4, 1)
        with torch.no_grad():
            self.layer.weight.copy_(torch.tensor([[0.1, -0.2, 0.3, -0.4]]))
            self.layer.bias.fill_(0.05)
        kill = os.environ.get("TINY_KILL_AT_STEP")
        self._kill_at = int(kill) if kill else None

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        if self._kill_at is not None and self.global_step == self._kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = nn.functional.mse_loss(self.layer(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", nn.functional.mse_loss(self.layer(x), y))

    def test_step(self, batch, batch_idx: int) -> None:
        x, y = batch
        self.log("test_loss", nn.functional.mse_loss(self.layer(x), y))

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self.layer(batch[0])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9)


class ResumableLoader(DataLoader):
    """A DataLoader that resumes mid-epoch: ``state_dict`` counts the batches of the current epoch
    already yielded, and the next iteration after ``load_state_dict`` skips that many."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._fetched = 0
        self._skip = 0

    def __iter__(self):
        skip, self._skip = self._skip, 0
        self._fetched = skip
        for i, batch in enumerate(super().__iter__()):
            if i < skip:
                continue
            self._fetched += 1
            yield batch

    def state_dict(self) -> dict:
        return {"fetched": self._fetched}

    def load_state_dict(self, state: dict) -> None:
        self._skip = int(state["fetched"])


class TinyData(pl.LightningDataModule):
    """``n`` fixed samples in batches of ``batch_size`` (no shuffling: every epoch sees the same batches);
    ``resumable``: the training loader resumes mid-epoch (:class:`ResumableLoader`)."""

    def __init__(self, n: int = 12, batch_size: int = 4, resumable: bool = False) -> None:
        super().__init__()
        self.resumable = resumable
        g = torch.Generator().manual_seed(0)
        x = torch.randn(n, 4, generator=g)
        y = x @ torch.tensor([[1.0], [2.0], [-1.0], [0.5]]) + 0.1 * torch.randn(n, 1, generator=g)
        self.data = TensorDataset(x, y)
        self.batch_size = batch_size

    def _loader(self) -> DataLoader:
        return DataLoader(self.data, batch_size=self.batch_size, shuffle=False)

    def train_dataloader(self) -> DataLoader:
        if self.resumable:
            return ResumableLoader(self.data, batch_size=self.batch_size, shuffle=False)
        return self._loader()

    def val_dataloader(self) -> DataLoader:
        return self._loader()

    def test_dataloader(self) -> DataLoader:
        return self._loader()

    def predict_dataloader(self) -> DataLoader:
        return self._loader()


class NamedTinyData(TinyData):
    """:class:`TinyData` with ``class_names``, which ``pc3d`` offers every task (``TinyTask`` takes none)."""

    class_names = ("target",)


def tiny_args(subcommand: str, run_dir: Path, *extra: str) -> list[str]:
    """``pc3d`` arguments for the tiny task in ``run_dir``."""
    return [
        subcommand,
        "--model=cli_tiny.TinyTask",
        "--data=cli_tiny.TinyData",
        f"--trainer.default_root_dir={run_dir}",
        "--trainer.accelerator=cpu",
        "--trainer.devices=1",
        "--trainer.logger=false",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--seed_everything=0",
        *extra,
    ]


def tiny_env(**extra: str) -> dict[str, str]:
    """Environment for a ``pc3d`` subprocess that imports this module, one thread."""
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1", MKL_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env
