"""Build a network from stacked shipped configs, as ``pc3d fit -c base.yaml -c override.yaml`` would."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from torch import nn


def network_spec(config: str) -> dict:
    """The ``model.init_args.model`` section (the network) of a shipped or local config."""
    from pc3d.cli import resolve_config

    path = resolve_config(config)
    try:
        return yaml.safe_load(Path(path).read_text())["model"]["init_args"]["model"]
    except (KeyError, TypeError) as e:
        raise ValueError(f"{path}: expected a model.init_args.model section") from e


def model_from_configs(*configs: str, **overrides) -> nn.Module:
    """The network of ``configs`` merged left to right with jsonargparse's rules (a later ``class_path``
    keeps the earlier ``init_args`` its class accepts), then ``overrides`` as init arguments."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(nn.Module, "model")
    args: list[str] = []
    for config in configs:
        args += ["--model", json.dumps(network_spec(config))]
    if overrides:
        args += ["--model", json.dumps({"init_args": overrides})]
    return parser.instantiate(parser.parse_args(args)).model
