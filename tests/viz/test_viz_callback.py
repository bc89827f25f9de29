"""The Lightning callback renders validation scenes each epoch and logs them."""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from viz_checks import assert_not_blank

from pc3d.viz.callback import RenderValidationScenes


class _Seg(pl.LightningModule):
    """A per-point linear classifier on xyz; validation returns logits for viz_samples."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 3)
        g = torch.Generator().manual_seed(0)
        self.coord = torch.rand(2, 200, 3, generator=g) * torch.tensor([4.0, 3.0, 2.0])
        self.segment = (self.coord[..., 0] > 2).long()

    def train_dataloader(self):
        return torch.utils.data.DataLoader(list(range(2)), batch_size=1)

    val_dataloader = train_dataloader

    def training_step(self, batch, batch_idx):
        i = int(batch[0])
        return torch.nn.functional.cross_entropy(self.lin(self.coord[i]), self.segment[i])

    def validation_step(self, batch, batch_idx):
        i = int(batch[0])
        return {"logits": self.lin(self.coord[i]), "index": i}

    def viz_samples(self, batch, outputs):
        i = outputs["index"]
        return [
            {
                "name": np.array(f"cloud{i}"),
                "coord": self.coord[i],
                "segment": self.segment[i],
                "pred": outputs["logits"].argmax(1),
                "class_names": np.array(["wall", "floor", "chair"]),
            }
        ]

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _trainer(tmp_path, callback, loggers):
    return pl.Trainer(
        default_root_dir=tmp_path,
        max_epochs=2,
        limit_train_batches=1,
        limit_val_batches=2,
        num_sanity_val_steps=1,
        logger=loggers,
        callbacks=[callback],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        log_every_n_steps=1,
        accelerator="cpu",
        devices=1,
    )


def test_renders_each_epoch_to_log_dir_and_tensorboard(tmp_path):
    from PIL import Image

    cb = RenderValidationScenes(
        num_scenes=1, views=("bev",), width=96, height=64, on_error="raise", annotate=False
    )
    tb = TensorBoardLogger(tmp_path, name="tb")
    _trainer(tmp_path, cb, [tb, CSVLogger(tmp_path, name="csv")]).fit(_Seg())
    names = sorted(p.relative_to(tb.log_dir).as_posix() for p in cb.written)
    # one scene per epoch, none from the sanity check; side by side because there are predictions
    assert names == ["renders/epoch_000/cloud0_bev.png", "renders/epoch_001/cloud0_bev.png"]
    img = np.asarray(Image.open(cb.written[0]).convert("RGB"))
    assert img.shape[0] == 64 and img.shape[1] == 2 * 96 + 4
    assert_not_blank(img[:, :96], 0.05) and assert_not_blank(img[:, 100:], 0.05)
    events = list((tmp_path / "tb").rglob("events.out.tfevents.*"))
    assert events and any(b"val_render/cloud0_bev" in e.read_bytes() for e in events)


def test_every_n_epochs_and_csv_only(tmp_path):
    cb = RenderValidationScenes(num_scenes=2, every_n_epochs=2, width=64, height=48, on_error="raise")
    _trainer(tmp_path, cb, CSVLogger(tmp_path, name="csv")).fit(_Seg())
    assert [p.parent.name for p in cb.written] == ["epoch_000", "epoch_000"]
    assert {p.name for p in cb.written} == {"cloud0_oblique.png", "cloud1_oblique.png"}


def test_module_without_protocol_is_rejected(tmp_path):
    class NoViz(_Seg):
        viz_samples = None

    with pytest.raises(TypeError, match="NoViz.viz_samples"):
        _trainer(tmp_path, RenderValidationScenes(), False).fit(NoViz())


def test_bad_sample_warns_and_stops(tmp_path):
    class BadSample(_Seg):
        def viz_samples(self, batch, outputs):
            return [{"coord": self.coord[0], "segment": self.segment[0][:10]}]

    cb = RenderValidationScenes(num_scenes=1, width=64, height=48)
    with pytest.warns(UserWarning, match="segment has shape"):
        _trainer(tmp_path, cb, False).fit(BadSample())
    assert cb.written == []
    with pytest.raises(ValueError, match="on_error"):
        RenderValidationScenes(on_error="ignore")
