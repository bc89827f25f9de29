"""The three calls a task makes on its network: ``model(batch)``, ``model.loss(out, batch)``,
``model.predict(out, batch)`` (see :mod:`pc3d.models.segmenter` and the detectors)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn


def check_model_interface(model: nn.Module) -> None:
    """Raise ``ValueError`` unless ``model`` has ``loss(out, batch)`` and ``predict(out, batch)`` methods."""
    for attr in ("loss", "predict"):
        if not callable(getattr(model, attr, None)):
            raise ValueError(f"model: {type(model).__name__} has no {attr}(out, batch) method")


class ClassNamesError(ValueError):
    """Class names that do not fit the network's number of classes.

    Attributes: ``class_names`` (the names given), ``num_classes`` (the network's), ``network`` (its class name).
    """

    def __init__(self, class_names: Sequence[str], num_classes: int, network: str) -> None:
        self.class_names, self.num_classes, self.network = list(class_names), num_classes, network
        super().__init__(
            f"class_names: {len(self.class_names)} names ({format_names(self.class_names)}) for the "
            f"{num_classes} classes of the network {network}"
        )


def check_class_names(class_names: Sequence[str] | None, num_classes: int | None, model: nn.Module) -> None:
    """Raise :class:`ClassNamesError` unless ``class_names`` (when given) are ``num_classes`` (when known)."""
    if class_names is not None and num_classes is not None and len(class_names) != num_classes:
        raise ClassNamesError(class_names, num_classes, type(model).__name__)


def format_names(names: Sequence[str], limit: int = 6) -> str:
    """``a, b, c, …, z`` for a message: the first ``limit - 1`` names and the last one."""
    names = [str(n) for n in names]
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[: limit - 1]) + ", …, " + names[-1]
