"""upgrade_hyperparameters: older task layouts in today's form."""

from __future__ import annotations

import pytest

from pc3d.tasks.hparams import upgrade_hyperparameters

#: what a SegmentationModule that held its loss settings saved (``pc3d fit -c meepo_demo.yaml``, abridged)
OLD_SEG = {
    "_class_path": "pc3d.tasks.segmentation.SegmentationModule",
    "_instantiator": "lightning.pytorch.cli.instantiate_module",
    "ce_weight": 1.0,
    "lovasz_weight": 1.0,
    "label_smoothing": 0.0,
    "ignore_index": -1,
    "color_in_feat": True,
    "lr": 0.005,
    "model": {
        "class_path": "pc3d.models.meepo.MEEPO",
        "init_args": {"enc_channels": [8, 16], "num_classes": 20},
    },
}


def test_default_loss_settings_are_dropped():
    new = upgrade_hyperparameters(OLD_SEG)
    assert new == {k: v for k, v in OLD_SEG.items() if k not in ("ce_weight", "lovasz_weight", "label_smoothing",
                                                                  "ignore_index", "color_in_feat")}  # fmt: skip
    assert upgrade_hyperparameters(new) == new  # today's layout is left alone


def test_changed_loss_settings_move_to_the_network_criterion():
    new = upgrade_hyperparameters({**OLD_SEG, "ce_weight": 0.5, "ignore_index": 255})
    assert new["model"]["init_args"] == {
        "enc_channels": [8, 16],
        "num_classes": 20,
        "criterion": {
            "class_path": "pc3d.models.losses.SegmentationLoss",
            "init_args": {"ce_weight": 0.5, "ignore_index": 255},
        },
    }
    assert OLD_SEG["model"]["init_args"] == {"enc_channels": [8, 16], "num_classes": 20}  # input untouched


def test_changed_loss_settings_without_a_network_configuration_fail_clearly():
    with pytest.raises(ValueError, match="criterion"):
        upgrade_hyperparameters({"ce_weight": 2.0, "lr": 0.1})


def test_an_old_segmentation_task_gets_todays_optimizer_schedule_and_criterion_at_once():
    old = {
        **OLD_SEG,
        "ce_weight": 0.5,
        "schedule": "onecycle",
        "final_div_factor": 100.0,
        "weight_decay": 0.05,
    }
    new = upgrade_hyperparameters(old)
    assert new["optimizer"] == {
        "class_path": "torch.optim.AdamW",
        "init_args": {"lr": 0.005, "weight_decay": 0.05, "betas": [0.9, 0.999]},
    }
    assert new["scheduler"] == {
        "class_path": "pc3d.tasks.schedules.OneCycle",
        "init_args": {"final_div_factor": 100.0},
    }
    assert new["model"]["init_args"]["criterion"]["init_args"] == {"ce_weight": 0.5}
    assert not {"lr", "schedule", "ce_weight", "color_in_feat", "final_div_factor"} & set(new)
