"""Detection inference equals the dataset's test path; sweeps in other formats; fallbacks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pc3d
from pc3d.data.batch import PointBatch
from pc3d.infer import InputError, read_cloud
from pc3d.infer.detect import find_kitti_calib
from tests.infer.scans import write_las, write_open3d

pytestmark = pytest.mark.samples


@pytest.fixture(scope="module")
def model(det_ckpt):
    return pc3d.load_model(det_ckpt)


def test_bin_prediction_equals_the_dataset_path(model, kitti_data, samples_dir):
    from pc3d.data.kitti import KittiDataModule

    hp = dict(model.task.datamodule.hparams)
    dm = KittiDataModule(**{k: v for k, v in hp.items() if not k.startswith("_")} | {"root": str(kitti_data)})
    item = dm.dataset("test")[0]
    with torch.no_grad():
        (expected,) = model.module.predict_step(PointBatch.collate([item]), 0)
    fid = item["meta"]["frame_id"]
    velodyne = samples_dir / "kitti" / "training" / "velodyne" / f"{fid}.bin"
    calib, image_size = find_kitti_calib(velodyne)
    assert calib is not None and image_size == (1242, 375)
    result = model.predict(read_cloud(velodyne), calib=calib, image_size=image_size)
    assert len(result.boxes) > 0
    np.testing.assert_allclose(result.boxes, expected["boxes_pred"].numpy(), atol=1e-5)
    np.testing.assert_allclose(result.scores, expected["scores_pred"].numpy(), atol=1e-6)
    np.testing.assert_array_equal(result.labels, expected["labels_pred"].numpy())
    assert result.class_names == ["Car", "Pedestrian", "Cyclist"]


@pytest.mark.parametrize("suffix", [".pcd", ".las", ".npy"])
def test_sweep_in_other_formats_gives_the_same_boxes(model, samples_dir, tmp_path, suffix):
    velodyne = samples_dir / "kitti" / "training" / "velodyne" / "000001.bin"
    calib = samples_dir / "kitti" / "training" / "calib" / "000001.txt"
    sweep = np.fromfile(velodyne, dtype=np.float32).reshape(-1, 4)
    path = tmp_path / f"sweep{suffix}"
    if suffix == ".pcd":
        write_open3d(path, sweep[:, :3], intensity=sweep[:, 3])
    elif suffix == ".las":
        write_las(path, sweep[:, :3].astype(np.float64), intensity=sweep[:, 3])
    else:
        np.save(path, sweep)
    reference = model.predict(sweep, calib=calib)
    result = model.predict(read_cloud(path), calib=calib)
    assert len(result.boxes) == len(reference.boxes) > 0
    if suffix != ".las":  # LAS rounds coordinates to 0.1 mm and reflectance to 16 bits
        np.testing.assert_allclose(result.boxes, reference.boxes, atol=1e-5)


def test_without_calibration_and_without_reflectance(model, samples_dir):
    sweep = np.fromfile(samples_dir / "kitti" / "training" / "velodyne" / "000002.bin", dtype=np.float32)
    sweep = sweep.reshape(-1, 4)
    result = model.predict(sweep)
    assert result.calib is None and "no calibration: whole sweep (no FOV crop)" in result.notes
    with pytest.raises(InputError, match="takes reflectance and the scan has none"):
        model.predict(sweep[:, :3])
    fallback = type(model)(model.task, missing_intensity=0.3)
    assert len(fallback.predict(sweep[:, :3]).boxes) > 0


def test_scan_outside_the_point_range_is_a_clear_error(model):
    far = np.full((100, 4), 500.0, np.float32)
    with pytest.raises(InputError, match="no point inside the trained point range"):
        model.predict(far)


@pytest.mark.parametrize(
    ("legacy", "expected"), [("kitti", "KittiMetric"), ("indoor", "IndoorMAP"), ("none", None)]
)
def test_checkpoint_naming_its_metric_by_string_still_loads(det_ckpt, tmp_path, legacy, expected):
    """Detection checkpoints of the string-metric layout (``metric: kitti``, ``iou_thresholds``) load."""
    ckpt = torch.load(det_ckpt, map_location="cpu", weights_only=True)
    ckpt["hyper_parameters"]["metric"] = legacy
    ckpt["hyper_parameters"]["iou_thresholds"] = [0.3, 0.6]
    old = tmp_path / "old.ckpt"
    torch.save(ckpt, old)
    metric = pc3d.load_model(old).module.val_metric
    assert (type(metric).__name__ if metric is not None else None) == expected
    if expected == "IndoorMAP":
        assert metric.iou_thresholds == (0.3, 0.6)


def test_pc3d_test_resumes_a_checkpoint_naming_its_metric_by_string(det_ckpt, kitti_data, tmp_path):
    """``pc3d test --ckpt_path`` reads the string-metric layout too (its hyper-parameters are upgraded)."""
    from pc3d.cli import PC3DCLI, resolve_config

    ckpt = torch.load(det_ckpt, map_location="cpu", weights_only=True)
    ckpt["hyper_parameters"]["metric"] = "kitti"
    old = tmp_path / "old.ckpt"
    torch.save(ckpt, old)
    cli = PC3DCLI(
        args=[
            "test",
            "-c",
            resolve_config("pointformer_demo_kitti.yaml"),
            f"--data.init_args.root={kitti_data}",
            "--data.init_args.num_points=1024",
            "--data.init_args.batch_size=1",
            f"--ckpt_path={old}",
            f"--trainer.default_root_dir={tmp_path}",
            "--trainer.logger=false",
            "--trainer.callbacks=[]",
            "--trainer.enable_progress_bar=false",
        ]  # fmt: skip
    )
    assert type(cli.model.test_metric).__name__ == "KittiMetric"
    assert any(k.startswith("test/") for k in cli.trainer.callback_metrics)
