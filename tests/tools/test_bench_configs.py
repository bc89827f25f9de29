"""The benchmarks' model tables build from the shipped configs with their overrides applied."""

from __future__ import annotations

import pytest

from pc3d.tools.bench import models_det, models_seg_demo
from pc3d.tools.bench.model_configs import model_from_configs


@pytest.mark.parametrize("variant", list(models_det.VARIANTS))
def test_every_detector_variant_builds_with_its_overrides(variant):
    _, backbone, head = models_det.VARIANTS[variant]
    model = models_det.build_model(variant)
    if "use_local_global" in backbone:
        assert (model.backbone.blocks[0].local_global is not None) == backbone["use_local_global"]
    if "refine" in backbone:
        assert model.backbone.blocks[0].refine == backbone["refine"]
    if "use_rcnn" in head:
        assert model.head.use_rcnn == head["use_rcnn"]


@pytest.mark.parametrize("name", list(models_seg_demo.MODELS))
def test_every_demo_model_builds(name):
    model = model_from_configs("meepo_demo.yaml", *models_seg_demo.MODELS[name])
    assert model.grid_size == 0.06 and sum(p.numel() for p in model.parameters()) < 1e6
