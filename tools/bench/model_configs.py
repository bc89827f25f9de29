"""Build a task or its network from stacked shipped configs, as ``pc3d fit -c base.yaml -c override.yaml`` would."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from torch import nn

#: the token mixers with shipped configs: ``mixers/<name>_scannet.yaml`` (paper size, over
#: ptv3_scannet.yaml) and ``mixers/<name>_demo.yaml`` (over meepo_demo.yaml)
MIXERS = ("agent", "inline", "mlla", "mediator", "slide", "deformable")


def config_section(config: str, *keys: str) -> Any:
    """The section ``keys`` (e.g. ``"model", "init_args", "model"``: the network) of a shipped or local config."""
    from pc3d.cli import resolve_config

    path = resolve_config(config)
    node = yaml.safe_load(Path(path).read_text())
    try:
        for key in keys:
            node = node[key]
    except (KeyError, TypeError) as e:
        raise ValueError(f"{path}: expected a {'.'.join(keys)} section") from e
    return node


def _has_section(config: str, key: str) -> bool:
    from pc3d.cli import resolve_config

    node = yaml.safe_load(Path(resolve_config(config)).read_text())
    return isinstance(node, dict) and key in node


def _instantiate(base: type, keys: tuple[str, ...], configs: tuple[str, ...], overrides: dict) -> Any:
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(base, "obj")
    args: list[str] = []
    for config in configs:
        if len(keys) == 1 and not _has_section(config, keys[0]):
            continue  # an override of other sections
        args += ["--obj", json.dumps(config_section(config, *keys))]
    if overrides:
        args += ["--obj", json.dumps({"init_args": overrides})]
    return parser.instantiate(parser.parse_args(args)).obj


def model_from_configs(*configs: str, **overrides: Any) -> nn.Module:
    """The network of ``configs`` merged left to right with jsonargparse's rules (a later ``class_path``
    keeps the earlier ``init_args`` its class accepts), then ``overrides`` as init arguments."""
    return _instantiate(nn.Module, ("model", "init_args", "model"), configs, overrides)


def task_from_configs(*configs: str, **overrides: Any) -> Any:
    """The LightningModule (``model`` section: task, network, metric) of ``configs``, merged likewise,
    with the ``class_names`` of their datamodule as ``pc3d fit`` links them (unless an override gives them)."""
    import lightning as L

    if "class_names" not in overrides and any(_has_section(c, "data") for c in configs):
        names = getattr(datamodule_from_configs(*configs), "class_names", None)
        if names is not None:
            overrides = {**overrides, "class_names": names}
    return _instantiate(L.LightningModule, ("model",), configs, overrides)


def datamodule_from_configs(*configs: str, **overrides: Any) -> Any:
    """The LightningDataModule (``data`` section) of ``configs``, merged likewise; it reads no data."""
    import lightning as L

    return _instantiate(L.LightningDataModule, ("data",), configs, overrides)
