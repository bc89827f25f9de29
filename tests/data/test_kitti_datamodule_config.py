"""KittiDataModule from a YAML config (LightningCLI-style class_path/init_args) on synthetic frames."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from jsonargparse import ArgumentParser

sys.path.insert(0, str(Path(__file__).parent))
from kitti_synth import make_kitti_root  # noqa: E402

from pc3d.data.batch import PointBatch  # noqa: E402
from pc3d.data.kitti import KittiDataModule, preprocess  # noqa: E402


def test_yaml_config_builds_datamodule(tmp_path):
    root = make_kitti_root(tmp_path / "kitti", ["000000", "000001", "000002", "000003"])
    out = tmp_path / "pre"
    assert preprocess(root, out, progress=False)["errors"] == {}
    cfg = f"""
data:
  class_path: pc3d.data.kitti.KittiDataModule
  init_args:
    root: {out}
    classes: [Car, Pedestrian]
    batch_size: 2
    num_workers: 0
    num_points: 1024
    point_range: [0, -20, -3, 50, 20, 1]
    sample_counts: {{Car: 3, Pedestrian: 2}}
    min_points: {{Car: 5, Pedestrian: 5}}
    rotation: [-0.1, 0.1]
    scaling: [1.0, 1.0]
"""
    (tmp_path / "c.yaml").write_text(cfg)
    p = ArgumentParser()
    p.add_subclass_arguments(KittiDataModule, "data")
    init = p.instantiate(p.parse_path(str(tmp_path / "c.yaml")))
    dm = init.data
    assert isinstance(dm, KittiDataModule) and dm.classes == ["Car", "Pedestrian"]
    dm.setup("fit")
    ds = dm.dataset("train")
    assert ds.sampler.sample_counts == {"Car": 3, "Pedestrian": 2} and ds.point_range == (
        0,
        -20,
        -3,
        50,
        20,
        1,
    )
    torch.manual_seed(0)
    b = next(iter(dm.train_dataloader()))
    assert isinstance(b, PointBatch) and b.offsets.tolist() == [0, 1024, 2048]
    assert set(b.box_labels.tolist()) <= {0, 1} and b.point["box_index"].max() < len(b.boxes)
    # the synthetic frames hold a labelled car and pedestrian with dense clusters: foreground exists
    assert (b.point["box_index"] >= 0).sum() > 0
    v = next(iter(dm.val_dataloader()))
    # val = odd ids (000001, 000003), no GT-sampling: exactly the two labelled objects per frame
    assert [m["frame_id"] for m in v.meta] == ["000001", "000003"] and v.box_offsets.tolist() == [0, 2, 4]


def test_imagesets_and_testing_split(tmp_path):
    import json
    import shutil

    import numpy as np
    import pytest

    from pc3d.data.kitti.dataset import KittiDataset

    root = make_kitti_root(tmp_path / "kitti", ["000000", "000001", "000002"])
    # a testing/ dir without labels, from the same synthetic frame
    for sub, ext in (("velodyne", "bin"), ("calib", "txt"), ("image_2", "png")):
        (root / "testing" / sub).mkdir(parents=True)
        shutil.copy(root / "training" / sub / f"000000.{ext}", root / "testing" / sub / f"000007.{ext}")
    sets = root / "ImageSets"
    sets.mkdir()
    (sets / "train.txt").write_text("000002\n000000\n")
    (sets / "val.txt").write_text("1\n")
    out = tmp_path / "pre"
    summary = preprocess(root, out, progress=False)
    assert summary["split_source"] == "ImageSets" and summary["splits"] == {"train": 2, "val": 1, "test": 1}
    infos = json.loads((out / "infos" / "kitti_infos_train.json").read_text())["frames"]
    assert [f["frame_id"] for f in infos] == ["000002", "000000"]  # order of the split file
    test = json.loads((out / "infos" / "kitti_infos_test.json").read_text())["frames"]
    assert test[0]["split_dir"] == "testing" and test[0]["annos"] is None
    item = KittiDataset(out, "test", num_points=512)[0]
    assert (
        item["boxes"].shape == (0, 7)
        and (item["point"]["box_index"] < 0).all()
        and item["meta"]["annos"] is None
    )
    assert np.isfinite(item["coord"]).all()
    # a malformed split file is a clear error naming file and line
    (sets / "val.txt").write_text("1\nabc\n")
    with pytest.raises(ValueError, match=r"val\.txt:2: expected a frame id"):
        preprocess(root, tmp_path / "pre2", progress=False)
