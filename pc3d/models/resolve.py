"""Model parts given by class, factory or dotted import path, as YAML configs name them."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from torch import nn


def resolve_class(spec: Callable[..., nn.Module] | str, name: str) -> Callable[..., nn.Module]:
    """``spec`` itself if callable, else the object at its dotted path (``"pc3d.models.blocks.MEEPOBlock"``).

    Raises ``ValueError`` naming the argument ``name`` when the path cannot be imported or ``spec`` is
    neither a path nor callable.
    """
    if isinstance(spec, str):
        module, _, attr = spec.rpartition(".")
        if not module:
            raise ValueError(f"{name}: expected a dotted class path, got {spec!r}")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise ValueError(f"{name}: cannot import {spec!r}: {e}") from e
    if not callable(spec):
        raise ValueError(f"{name}: expected a class, callable or dotted path, got {type(spec).__name__}")
    return spec
