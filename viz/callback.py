"""Lightning callback that renders a few validation scenes each epoch (headless) and logs the PNGs.

Protocol: the LightningModule provides ::

    def viz_samples(self, batch, outputs) -> list[dict]:
        '''Scenes of one validation batch in the prediction-file format.'''

where ``outputs`` is what ``validation_step`` returned and every dict has keys from
:data:`pc3d.viz.scene.NPZ_KEYS` (numpy arrays or tensors): at least ``coord (N, 3)``, plus
``segment``/``pred`` and/or ``boxes_gt``/``labels_gt``/``boxes_pred``/``scores_pred``/
``labels_pred``, ``class_names`` and ideally ``name``. The callback keeps the first
``num_scenes`` scenes of each validation epoch (global rank 0 only), renders each one (side by
side ground truth | prediction when there are predictions), writes
``<log_dir>/<dirname>/epoch_XXX/<name>_<view>.png`` and, with a TensorBoard logger, logs the image
as ``val_render/<name>_<view>``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from lightning.pytorch import Callback, LightningModule, Trainer

from pc3d.viz.geometry import COLOR_MODES
from pc3d.viz.scene import Scene, scene_from_dict


class RenderValidationScenes(Callback):
    """Render ``num_scenes`` validation scenes every ``every_n_epochs`` epochs.

    Args:
        num_scenes: scenes per epoch (the first ones of the validation loop).
        every_n_epochs: render on epochs ``0, n, 2n, ...``.
        views: camera presets (``bev``, ``oblique``, ``driver``); one image per view.
        color_by: colouring of scenes without predictions (with predictions the image is side by side).
        width, height: size of one panel in pixels.
        dirname: sub-folder of the trainer's ``log_dir``.
        min_score: predicted boxes below this score are not drawn.
        on_error: ``"warn"`` (warn once, stop rendering, keep training) or ``"raise"``.
        annotate: draw title, legend and box captions on the images.
    """

    def __init__(
        self,
        num_scenes: int = 2,
        every_n_epochs: int = 1,
        views: Sequence[str] = ("oblique",),
        color_by: str = "gt",
        width: int = 480,
        height: int = 360,
        dirname: str = "renders",
        min_score: float = 0.0,
        on_error: str = "warn",
        annotate: bool = True,
    ) -> None:
        super().__init__()
        if num_scenes < 1 or every_n_epochs < 1:
            raise ValueError(
                f"num_scenes and every_n_epochs must be >= 1, got {num_scenes}, {every_n_epochs}"
            )
        if color_by not in COLOR_MODES:
            raise ValueError(f"color_by must be one of {COLOR_MODES}, got {color_by!r}")
        if on_error not in ("warn", "raise"):
            raise ValueError(f"on_error must be 'warn' or 'raise', got {on_error!r}")
        self.num_scenes = num_scenes
        self.every_n_epochs = every_n_epochs
        self.views = tuple(views)
        self.color_by = color_by
        self.width, self.height = width, height
        self.dirname = dirname
        self.min_score = min_score
        self.on_error = on_error
        self.annotate = annotate
        self._samples: list[dict[str, Any]] = []
        self._renderer = None
        self._disabled = False
        self.written: list[Path] = []

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if not callable(getattr(pl_module, "viz_samples", None)):
            raise TypeError(
                f"{type(self).__name__} needs {type(pl_module).__name__}.viz_samples(batch, outputs) -> list[dict] "
                "(scenes in the prediction-file format); this module does not define it"
            )

    def _active(self, trainer: Trainer) -> bool:
        return (
            not self._disabled
            and not trainer.sanity_checking
            and trainer.is_global_zero
            and trainer.current_epoch % self.every_n_epochs == 0
        )

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._samples = []

    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not self._active(trainer) or len(self._samples) >= self.num_scenes:
            return
        for sample in pl_module.viz_samples(batch, outputs):
            if len(self._samples) >= self.num_scenes:
                break
            self._samples.append(
                {k: (v.detach().cpu().numpy() if hasattr(v, "detach") else v) for k, v in sample.items()}
            )

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not self._active(trainer) or not self._samples:
            return
        try:
            self._render_all(trainer)
        except (RuntimeError, ValueError, OSError) as e:
            if self.on_error == "raise":
                raise
            warnings.warn(
                f"{type(self).__name__}: rendering failed, no more renders this run: {e}", stacklevel=1
            )
            self._disabled = True
        finally:
            self._samples = []

    def _render_all(self, trainer: Trainer) -> None:
        from pc3d.viz.render import Renderer, annotated, render_side_by_side, save_png

        if self._renderer is None:
            self._renderer = Renderer(self.width, self.height)
        out_dir = (
            Path(trainer.log_dir or trainer.default_root_dir)
            / self.dirname
            / f"epoch_{trainer.current_epoch:03d}"
        )
        tb = _tensorboard(trainer)
        for i, sample in enumerate(self._samples):
            scene: Scene = scene_from_dict(sample, name=f"val{i}", source="validation sample")
            for view in self.views:
                if scene.has_pred:
                    image = render_side_by_side(
                        self._renderer, scene, view, annotate=self.annotate, min_score=self.min_score
                    )
                else:
                    frame = self._renderer.render(scene, view, self.color_by, min_score=self.min_score)
                    image = annotated(frame, frame.layers.title) if self.annotate else frame.image
                tag = f"{scene.name}_{view}"
                self.written.append(save_png(image, out_dir / f"{tag}.png"))
                if tb is not None:
                    tb.add_image(
                        f"val_render/{tag}",
                        np.ascontiguousarray(image),
                        trainer.global_step,
                        dataformats="HWC",
                    )

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


def _tensorboard(trainer: Trainer):
    """The ``SummaryWriter`` of the trainer's first TensorBoard logger, or ``None``."""
    from lightning.pytorch.loggers import TensorBoardLogger

    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            return logger.experiment
    return None
