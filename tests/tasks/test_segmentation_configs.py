"""The shipped segmentation configs build their task, model and datamodule arguments."""

from __future__ import annotations

import pytest

from pc3d.tools.bench.model_configs import datamodule_from_configs, task_from_configs


@pytest.mark.parametrize("name", ["meepo_scannet.yaml", "ptv3_scannet.yaml", "meepo_demo.yaml"])
def test_config_builds(name):
    task = task_from_configs(name)
    assert task.num_classes == 20 and len(task.class_names) == 20
    data = datamodule_from_configs(name)  # every key is an argument
    model = task.model
    assert data.hparams.grid_size == model.grid_size  # voxels of the data = voxels of the model
    params = sum(p.numel() for p in model.parameters())
    if name == "ptv3_scannet.yaml":
        assert abs(params / 46.2e6 - 1) < 0.05
    if name == "meepo_demo.yaml":
        assert params < 2e6  # CPU-friendly
