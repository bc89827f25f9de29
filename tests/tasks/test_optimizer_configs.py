"""Optimizer and scheduler of every shipped config, and of older checkpoints' hyper-parameters, step by step
against the recipe the tasks used to build from ``lr``/``weight_decay``/``schedule`` arguments."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
import torch

from pc3d.tasks.hparams import upgrade_hyperparameters
from pc3d.tasks.schedules import BudgetSchedule
from pc3d.tools.bench.model_configs import task_from_configs

SEG = "pc3d.tasks.segmentation.SegmentationModule"
DET = "pc3d.tasks.detection.DetectionModule"
BLOCKS = r"(^|\.)(enc|dec)\.\d+\.\d+\."

#: each shipped config's optimiser arguments in the former layout (defaults filled in)
LEGACY = {
    "meepo_demo.yaml": {"_class_path": SEG, "lr": 0.005, "weight_decay": 0.05, "betas": [0.9, 0.999],
                        "block_lr_scale": 1.0, "schedule": "onecycle", "pct_start": 0.05, "div_factor": 10.0,
                        "final_div_factor": 100.0},
    "meepo_scannet.yaml": {"_class_path": SEG, "lr": 0.006, "weight_decay": 0.05, "betas": [0.9, 0.999],
                           "block_lr_scale": 0.1, "schedule": "onecycle", "pct_start": 0.05, "div_factor": 10.0,
                           "final_div_factor": 1000.0},
    "pointformer_demo_kitti.yaml": {"_class_path": DET, "optimizer": "adamw", "lr": 0.002, "weight_decay": 0.01,
                                    "betas": [0.9, 0.999], "schedule": "cosine", "milestones": [32, 40],
                                    "gamma": 0.3, "mean_sizes_from_data": False},
    "pointformer_pointrcnn_kitti.yaml": {"_class_path": DET, "optimizer": "adamw", "lr": 0.001,
                                         "weight_decay": 0.01, "betas": [0.9, 0.999], "schedule": "cosine",
                                         "milestones": [32, 40], "gamma": 0.3, "mean_sizes_from_data": False},
    "pointformer_votenet_scannet.yaml": {"_class_path": DET, "optimizer": "adamw", "lr": 0.002,
                                         "weight_decay": 0.1, "betas": [0.9, 0.999], "schedule": "step",
                                         "milestones": [32, 40], "gamma": 0.3, "mean_sizes_from_data": True},
}  # fmt: skip
LEGACY["ptv3_scannet.yaml"] = LEGACY["meepo_scannet.yaml"]
LEGACY["pointformer_demo_scannet.yaml"] = {
    **LEGACY["pointformer_demo_kitti.yaml"],
    "mean_sizes_from_data": True,
}

TOTAL = 40


class _Trainer:
    """What :func:`pc3d.tasks.schedules.trainer_budget` reads: a 40-step budget."""

    estimated_stepping_batches = TOTAL


def legacy_recipe(task: Any, hp: dict[str, Any]) -> tuple[torch.optim.Optimizer, Any, str]:
    """The optimizer and scheduler the tasks built from the former arguments (their old code)."""
    if hp["_class_path"] == SEG:
        pattern = re.compile(hp.get("block_lr_pattern", BLOCKS))
        block, other = [], []
        for name, p in task.model.named_parameters():
            if p.requires_grad:
                (block if pattern.search(name) else other).append(p)
        groups = [{"params": other, "lr": hp["lr"]}]
        if block:
            groups.append({"params": block, "lr": hp["lr"] * hp["block_lr_scale"]})
        opt = torch.optim.AdamW(
            groups, lr=hp["lr"], weight_decay=hp["weight_decay"], betas=tuple(hp["betas"])
        )
        warm = min(max(hp["pct_start"], 2.0 / TOTAL), 0.5)
        sched = BudgetSchedule(opt, hp["schedule"], TOTAL, pct_start=warm,
                               div_factor=hp["div_factor"], final_div_factor=hp["final_div_factor"])  # fmt: skip
        return opt, sched, "step"
    params = [p for p in task.model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=hp["lr"], weight_decay=hp["weight_decay"], betas=tuple(hp["betas"]))
    if hp["schedule"] == "step":
        return opt, torch.optim.lr_scheduler.MultiStepLR(opt, hp["milestones"], gamma=hp["gamma"]), "epoch"
    return opt, BudgetSchedule(opt, "cosine", TOTAL), "step"


def trace(opt: torch.optim.Optimizer, sched: Any, steps: int = TOTAL + 10) -> list[list[tuple]]:
    """Every group's (size, lr, betas, weight decay, eps) before each of ``steps`` scheduler steps."""
    out = []
    for _ in range(steps):
        out.append([(len(g["params"]), g["lr"], tuple(g["betas"]), g["weight_decay"], g["eps"])
                    for g in opt.param_groups])  # fmt: skip
        opt.step()
        sched.step()
    return out


def configured(task: Any) -> tuple[torch.optim.Optimizer, Any, str]:
    task._trainer = _Trainer()
    try:
        cfg = task.configure_optimizers()
    finally:
        task._trainer = None
    return cfg["optimizer"], cfg["lr_scheduler"]["scheduler"], cfg["lr_scheduler"]["interval"]


@pytest.mark.parametrize("name", sorted(LEGACY))
def test_shipped_config_and_upgraded_checkpoint_match_the_former_recipe(name: str):
    torch.manual_seed(0)
    task = task_from_configs(name)
    ref_opt, ref_sched, ref_interval = legacy_recipe(task, LEGACY[name])
    expected = trace(ref_opt, ref_sched)
    opt, sched, interval = configured(task)
    assert type(opt) is type(ref_opt) and type(sched) is type(ref_sched) and interval == ref_interval
    assert [g["params"] for g in opt.param_groups] == [g["params"] for g in ref_opt.param_groups]
    assert opt.defaults == ref_opt.defaults
    assert trace(opt, sched) == expected  # exactly: same floats, step by step

    upgraded = upgrade_hyperparameters(LEGACY[name])  # a checkpoint saved with the former arguments
    assert not {"lr", "weight_decay", "betas", "schedule", "mean_sizes_from_data"} & set(upgraded)
    old = task_from_configs(name, optimizer=upgraded["optimizer"], scheduler=upgraded["scheduler"])
    old.model = task.model
    opt, sched, _ = configured(old)
    assert trace(opt, sched) == expected


def test_upgrade_of_other_former_settings():
    up = upgrade_hyperparameters({"_class_path": DET, "optimizer": "sgd", "lr": 0.1, "weight_decay": 0.0,
                                  "betas": [0.8, 0.9], "schedule": "none"})  # fmt: skip
    assert up["scheduler"] is None
    assert up["optimizer"] == {"class_path": "torch.optim.SGD",
                               "init_args": {"lr": 0.1, "weight_decay": 0.0, "momentum": 0.8}}  # fmt: skip
    assert upgrade_hyperparameters({"lr": 0.05}) == {"lr": 0.05}  # not a pc3d task: unchanged
    with pytest.raises(ValueError, match="legacy optimizer 'lamb'"):
        upgrade_hyperparameters({"_class_path": DET, "optimizer": "lamb", "schedule": "step"})
    assert math.isclose(
        upgrade_hyperparameters(LEGACY["meepo_demo.yaml"])["optimizer"]["init_args"]["lr"], 0.005
    )


def test_upgrade_gives_a_votenet_head_without_mean_sizes_scannets():
    """VoteNet heads once defaulted to ScanNet's mean sizes; the trained values are in the state dict."""
    from pc3d.data.scannet.classes import SCANNET_DET_MEAN_SIZES

    head = {"class_path": "pc3d.models.heads.votenet.VoteNetHead", "init_args": {"in_channels": 128}}
    legacy = {**LEGACY["pointformer_votenet_scannet.yaml"],
              "model": {"class_path": "pc3d.models.pointformer_votenet.PointformerVoteNet",
                        "init_args": {"head": head}}}  # fmt: skip
    up = upgrade_hyperparameters(legacy)
    sizes = up["model"]["init_args"]["head"]["init_args"]["mean_sizes"]
    assert sizes == [list(m) for m in SCANNET_DET_MEAN_SIZES] and "mean_sizes" not in head["init_args"]
    assert "mean_sizes_from_data" not in up


def test_upgrade_of_a_scannet_datamodule_with_mean_sizes():
    from pc3d.tasks.hparams import upgrade_datamodule_hyperparameters

    old = {
        "_class_path": "pc3d.data.scannet.ScanNetDataModule",
        "root": "r",
        "task": "det",
        "mean_sizes": "data",
    }
    assert upgrade_datamodule_hyperparameters(old) == {k: v for k, v in old.items() if k != "mean_sizes"}
    kitti = {"_class_path": "pc3d.data.kitti.KittiDataModule", "root": "r"}
    assert upgrade_datamodule_hyperparameters(kitti) is kitti


def test_schedules_name_their_bad_arguments():
    from pc3d.tasks.schedules import MultiStep, OneCycle, Schedule

    with pytest.raises(ValueError, match="pct_start"):
        OneCycle(pct_start=1.5)
    with pytest.raises(ValueError, match="div_factor"):
        OneCycle(div_factor=0.0)
    with pytest.raises(ValueError, match="milestones"):
        MultiStep(milestones=(40, 32))
    with pytest.raises(ValueError, match="gamma"):
        MultiStep(gamma=0.0)
    with pytest.raises(TypeError):
        Schedule()  # abstract: a schedule says how it anneals
