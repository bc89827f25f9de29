"""The interface of detection metrics, which a detection task is configured with by class path.

metric:
  class_path: pc3d.metrics.KittiMetric      # or pc3d.metrics.IndoorMAP with init_args
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn


class DetectionMetric(nn.Module, ABC):
    """Scores one split's detections, batch by batch, over all DDP ranks.

    :class:`~pc3d.tasks.detection.DetectionModule` keeps one copy per split (``val``, ``test``) and
    calls :meth:`bind` once with the class names, :meth:`update` with every batch's predictions
    (one dict per cloud: ``boxes (K, 7)``, ``scores (K,)``, ``labels (K,)``), then :meth:`compute`
    (scores by name, logged as ``<split>/<name>``) and :meth:`reset` at the end of each epoch. Names
    in :attr:`progress_bar` are shown in the progress bar. A module, so that its states move with
    the task to its device.
    """

    progress_bar: tuple[str, ...] = ()

    def __init__(self) -> None:
        super().__init__()
        self.class_names: list[str] = []

    def bind(self, class_names: Sequence[str]) -> None:
        """The names of the model's classes, in label order."""
        self.class_names = list(class_names)

    @abstractmethod
    def update(self, preds: Sequence[dict[str, Tensor]], batch: Any) -> None:
        """Add the predictions for one :class:`~pc3d.data.batch.PointBatch` (its ground truth in the batch)."""

    @abstractmethod
    def compute(self) -> dict[str, float]:
        """Scores of everything added since the last :meth:`reset` (classes without ground truth left out)."""

    @abstractmethod
    def reset(self) -> None:
        """Forget what was added."""


__all__ = ["DetectionMetric"]
