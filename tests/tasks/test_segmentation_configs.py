"""The shipped segmentation configs build their task, model and datamodule arguments."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import pytest
import yaml

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _cls(path: str):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _build(spec):
    if isinstance(spec, dict) and "class_path" in spec:
        args = {k: _build(v) for k, v in spec.get("init_args", {}).items()}
        return _cls(spec["class_path"])(**args)
    return spec


@pytest.mark.parametrize("name", ["meepo_scannet.yaml", "ptv3_scannet.yaml", "meepo_demo.yaml"])
def test_config_builds(name):
    cfg = yaml.safe_load((CONFIGS / name).read_text())
    task = _build(cfg["model"])
    assert task.num_classes == 20 and len(task.class_names) == 20
    data = cfg["data"]
    inspect.signature(_cls(data["class_path"])).bind(**data["init_args"])  # every key is an argument
    model = task.model
    assert data["init_args"]["grid_size"] == model.grid_size  # voxels of the data = voxels of the model
    params = sum(p.numel() for p in model.parameters())
    if name == "ptv3_scannet.yaml":
        assert abs(params / 46.2e6 - 1) < 0.05
    if name == "meepo_demo.yaml":
        assert params < 2e6  # CPU-friendly
