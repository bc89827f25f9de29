"""Segmentation inference equals the dataset's test path; tiling, fallbacks and the Python API."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pc3d
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
    assert hp["model"]["class_path"] == "pc3d.models.meepo.MEEPO"
    assert hp["model"]["init_args"]["enc_channels"] == [8, 16]
    module = SegmentationModule.load_from_checkpoint(seg_ckpt, map_location="cpu", weights_only=True)
    assert isinstance(module.model, MEEPO)
