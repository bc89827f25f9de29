"""Segmentation inference equals the dataset's test path; tiling, fallbacks and the Python API."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import pc3d
from pc3d.data.scannet.classes import SCANNET20_CLASSES
from pc3d.infer import InputError, read_cloud
from tests.infer.scans import SCENE, scannet_arrays, write_open3d

pytestmark = pytest.mark.samples


@pytest.fixture(scope="module")
def model(seg_ckpt):
    return pc3d.load_model(seg_ckpt)


@pytest.fixture(scope="module")
def scene(samples_dir, scannet_data):
    return scannet_arrays(samples_dir, scannet_data)


def dataset_prediction(model, root) -> np.ndarray:
    """``pc3d predict``'s labels of scene0000_00: the datamodule's test dataset and ``predict_step``."""
    from pc3d.data.scannet.dataset import ScanNetDataset, collate_fragments

    dm = model.task.datamodule
    ds = ScanNetDataset(root, [SCENE], task="seg", stage="test", seg_aug=dm.seg_aug, test_views=dm.test_views)
    with torch.no_grad():
        (record,) = model.module.predict_step(collate_fragments([ds[0]]), 0)
    return record["pred"].numpy()


def test_ply_prediction_equals_the_dataset_path(model, scene, scannet_data, tmp_path):
    path = write_open3d(tmp_path / "scene.ply", scene["coord"], scene["color"], scene["normal"])
    result = model.predict(read_cloud(path))
    expected = dataset_prediction(model, scannet_data)
    assert result.labels.shape == expected.shape == (len(scene["coord"]),)
    agreement = (result.labels == expected).mean()
    assert agreement > 0.999  # voting noise only (float summation order)
    assert result.num_tiles == 1 and result.notes == []
    assert result.class_names[:2] == ["wall", "floor"]


def test_tiled_scan_labels_every_point(model, scene):
    tiled = type(model)(model.task, tile_points=5000, overlap=0.5)
    seen = []
    coord, color, normal = (scene[k][::4] for k in ("coord", "color", "normal"))
    result = tiled.predict(coord, colors=color, normals=normal, progress=lambda d, t: seen.append((d, t)))
    assert result.num_tiles > 3 and seen[-1] == (result.num_tiles, result.num_tiles)
    assert result.labels.shape == (len(coord),) and (result.labels >= 0).all()
    assert ((result.scores > 0) & (result.scores <= 1 + 1e-6)).all()


def test_estimated_normals_and_nan_rows(model, scene):
    coord = scene["coord"][::8].astype(np.float64)
    coord[5] = np.nan
    with pytest.warns(UserWarning, match="dropped 1 of"):
        result = model.predict(coord, colors=scene["color"][::8] / 255.0)  # float colours in [0, 1]
    assert result.labels.shape == (len(coord),)
    assert result.labels[5] == -1 and (np.delete(result.labels, 5) >= 0).all()
    assert any("normals estimated" in n for n in result.notes)


def test_missing_colour_is_an_error_or_grey(model, scene):
    with pytest.raises(InputError, match="trained with colours and the scan has none"):
        model.predict(scene["coord"][::8])
    grey = type(model)(model.task, missing_color="gray")
    result = grey.predict(scene["coord"][::8], normals=scene["normal"][::8])
    assert (result.labels >= 0).all() and "no colours: constant grey" in result.notes


def test_bad_points_array(model):
    with pytest.raises(InputError, match=r"expected an \(N, 3\) array"):
        model.predict(np.zeros((5, 2)))


def test_georeferenced_coordinates_keep_their_precision(model, scene):
    coord, color, normal = (scene[k][::8] for k in ("coord", "color", "normal"))
    local = model.predict(coord, colors=color, normals=normal)
    utm = model.predict(
        coord.astype(np.float64) + [512_345.0, 5_401_234.0, 250.0], colors=color, normals=normal
    )
    assert (utm.labels == local.labels).mean() > 0.99


def test_checkpoint_rebuilds_its_network(seg_ckpt):
    from pc3d.models.meepo import MEEPO
    from pc3d.tasks.segmentation import SegmentationModule

    hp = torch.load(seg_ckpt, map_location="cpu", weights_only=True)["hyper_parameters"]
    assert hp["class_names"] == list(SCANNET20_CLASSES)  # linked from the datamodule by `pc3d fit`
    assert hp["model"]["class_path"] == "pc3d.models.meepo.MEEPO"
    assert hp["model"]["init_args"]["enc_channels"] == [8, 16]
    module = SegmentationModule.load_from_checkpoint(seg_ckpt, map_location="cpu", weights_only=True)
    assert isinstance(module.model, MEEPO)


def _old_layout(seg_ckpt, tmp_path, **loss) -> Path:
    """``seg_ckpt`` as a task that held the loss settings itself wrote it: task-level ``ce_weight``,
    ``lovasz_weight``, ``label_smoothing``, ``ignore_index`` and ``color_in_feat``, no ``criterion``."""
    ckpt = torch.load(seg_ckpt, map_location="cpu", weights_only=True)
    hp = ckpt["hyper_parameters"]
    assert "criterion" not in hp["model"]["init_args"] or hp["model"]["init_args"]["criterion"] is None
    hp["model"]["init_args"].pop("criterion", None)
    hp.update({"ignore_index": -1, "ce_weight": 1.0, "lovasz_weight": 1.0, "label_smoothing": 0.0})
    hp.update(loss, color_in_feat=True)
    old = tmp_path / "old.ckpt"
    torch.save(ckpt, old)
    return old


def test_checkpoint_of_the_task_level_loss_layout_loads(seg_ckpt, tmp_path):
    """Loss settings of the task move to the network's criterion; the weights load unchanged."""
    old = _old_layout(seg_ckpt, tmp_path, ce_weight=0.5, label_smoothing=0.1)
    task = pc3d.load_model(old)
    criterion = task.module.model.criterion
    assert (criterion.ce_weight, criterion.lovasz_weight, criterion.label_smoothing) == (0.5, 1.0, 0.1)
    assert task.module.ignore_index == -1
    weights = torch.load(seg_ckpt, map_location="cpu", weights_only=True)["state_dict"]
    state = task.module.state_dict()
    assert list(state) == list(weights)
    assert all(torch.equal(state[k], weights[k]) for k in weights)
    defaults = pc3d.load_model(_old_layout(seg_ckpt, tmp_path))  # default settings: no criterion needed
    assert defaults.module.model.criterion.ce_weight == 1.0


def test_lightning_loader_refuses_to_drop_task_level_loss_settings(seg_ckpt, tmp_path):
    """``load_from_checkpoint`` filters unknown arguments; the task names what it would lose."""
    from pc3d.tasks.segmentation import SegmentationModule

    old = _old_layout(seg_ckpt, tmp_path, ce_weight=0.5)
    with pytest.raises(ValueError, match=r"\{'ce_weight': 0.5\}.*pc3d.load_model"):
        SegmentationModule.load_from_checkpoint(old, map_location="cpu", weights_only=True)
    module = SegmentationModule.load_from_checkpoint(_old_layout(seg_ckpt, tmp_path), weights_only=True)
    assert module.model.criterion.ce_weight == 1.0


def test_pc3d_test_resumes_a_checkpoint_of_the_task_level_loss_layout(seg_ckpt, scannet_data, tmp_path):
    from tiny_meepo import TINY_MEEPO_ARGS

    from pc3d.cli import PC3DCLI, resolve_config

    old = _old_layout(seg_ckpt, tmp_path, lovasz_weight=0.25)
    cli = PC3DCLI(
        args=[
            "test",
            "-c",
            resolve_config("meepo_demo.yaml"),
            *TINY_MEEPO_ARGS,
            f"--data.init_args.root={scannet_data}",
            "--data.init_args.test_split=[scene0000_00]",
            f"--ckpt_path={old}",
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.logger=false",
            "--trainer.callbacks=[]",
            "--trainer.enable_progress_bar=false",
        ]
    )
    assert cli.model.model.criterion.lovasz_weight == 0.25
    assert cli.model.class_names == list(SCANNET20_CLASSES)
    assert "test/mIoU" in cli.trainer.callback_metrics


def test_pc3d_test_refuses_a_checkpoint_trained_on_other_classes(
    seg_ckpt, scannet_data, tmp_path, monkeypatch, capsys
):
    from pc3d.cli import main

    monkeypatch.chdir(tmp_path)
    ckpt = torch.load(seg_ckpt, map_location="cpu", weights_only=True)
    ckpt["hyper_parameters"]["class_names"] = [f"c{i}" for i in range(20)]
    other = tmp_path / "other.ckpt"
    torch.save(ckpt, other)
    args = ["test", "-c", "meepo_demo.yaml", f"--data.init_args.root={scannet_data}", f"--ckpt_path={other}"]
    assert main(args) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("pc3d: error:")]
    assert err == [
        f"pc3d: error: the class names of --ckpt_path {other} (c0, c1, c2, c3, c4, …, c19) differ from those of "
        "the datamodule ScanNetDataModule (wall, floor, cabinet, bed, chair, …, otherfurniture): the task's "
        "class names come from the datamodule; configure the datamodule for the classes that checkpoint was "
        "trained on"
    ]
