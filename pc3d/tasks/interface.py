"""The three calls a task makes on its network: ``model(batch)``, ``model.loss(out, batch)``,
``model.predict(out, batch)`` (see :mod:`pc3d.models.segmenter` and the detectors)."""

from __future__ import annotations

from torch import nn


def check_model_interface(model: nn.Module) -> None:
    """Raise ``ValueError`` unless ``model`` has ``loss(out, batch)`` and ``predict(out, batch)`` methods."""
    for attr in ("loss", "predict"):
        if not callable(getattr(model, attr, None)):
            raise ValueError(f"model: {type(model).__name__} has no {attr}(out, batch) method")
