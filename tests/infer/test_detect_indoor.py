"""Indoor (VoteNet) detection inference equals the dataset's test path; colour, alignment, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import pc3d
from pc3d.cli import main
from pc3d.data.batch import PointBatch
from pc3d.infer import InputError, read_cloud
from pc3d.infer.detect_indoor import IndoorDetectionPredictor, find_scannet_alignment
from tests.infer.scans import SCENE, scannet_arrays, write_open3d

pytestmark = pytest.mark.samples


@pytest.fixture(scope="module")
def model(indoor_det_ckpt):
    return pc3d.load_model(indoor_det_ckpt)


@pytest.fixture(scope="module")
def scene(samples_dir, scannet_data):
    return scannet_arrays(samples_dir, scannet_data)


@pytest.fixture(scope="module")
def alignment(samples_dir):
    return samples_dir / "scannet" / "scans" / SCENE / f"{SCENE}.txt"


def dataset_prediction(model, root) -> dict:
    """``pc3d predict``'s boxes of scene0000_00: the datamodule's test dataset and ``predict_step``."""
    from pc3d.data.scannet.dataset import ScanNetDataset

    dm = model.task.datamodule
    ds = ScanNetDataset(
        root,
        [SCENE],
        task="det",
        stage="test",
        seed=dm.seed,
        det_aug=dm.det_aug,
        use_color_det=dm.use_color_det,
    )
    with torch.no_grad():
        (record,) = model.module.predict_step(PointBatch.collate([ds[0]]), 0)
    return record


def assert_same_boxes(result, expected) -> None:
    assert len(result.boxes) > 0
    np.testing.assert_allclose(result.boxes, expected["boxes_pred"].numpy(), atol=1e-5)
    np.testing.assert_allclose(result.scores, expected["scores_pred"].numpy(), atol=1e-5)
    np.testing.assert_array_equal(result.labels, expected["labels_pred"].numpy())


def test_ply_prediction_equals_the_dataset_path(model, scene, scannet_data, alignment, tmp_path):
    assert isinstance(model, IndoorDetectionPredictor) and not model.use_color
    path = write_open3d(tmp_path / "scene.ply", scene["coord"])  # no colours: this model takes none
    result = model.predict(read_cloud(path), axis_align=alignment)
    assert_same_boxes(result, dataset_prediction(model, scannet_data))
    assert result.boxes.shape[1] == 7 and result.scene_kind == "indoor" and result.calib is None
    assert result.class_names[:3] == ["cabinet", "bed", "chair"]
    assert result.axis_align is not None and result.notes == []
    unaligned = model.predict(scene["coord"])  # taken as aligned: a rotated room, other boxes
    assert unaligned.axis_align is None
    assert unaligned.boxes.shape != result.boxes.shape or not np.allclose(
        unaligned.boxes, result.boxes, atol=1e-3
    )


def test_colour_model_takes_colours_or_the_grey_fallback(
    indoor_color_det_ckpt, scene, scannet_data, alignment, tmp_path
):
    model = pc3d.load_model(indoor_color_det_ckpt)
    assert model.use_color and "colour" in model.describe()
    path = write_open3d(tmp_path / "scene.ply", scene["coord"], scene["color"])
    result = model.predict(read_cloud(path), axis_align=alignment)
    assert_same_boxes(result, dataset_prediction(model, scannet_data))
    with pytest.raises(InputError, match="trained with colours and the scan has none") as err:
        model.predict(scene["coord"], axis_align=alignment)
    assert "\n" not in str(err.value)
    grey = pc3d.load_model(indoor_color_det_ckpt, missing_color="gray")
    assert "no colours: constant grey" in grey.predict(scene["coord"], axis_align=alignment).notes


def test_bad_alignment_is_a_one_line_error(model, scene, tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("axisAlignment = 1 0 0\n")
    with pytest.raises(InputError, match=r"bad\.txt.*axisAlignment: expected 16 numbers") as err:
        model.predict(scene["coord"], axis_align=bad)
    assert "\n" not in str(err.value)
    with pytest.raises(InputError, match=r"axis_align: expected a finite \(4, 4\) matrix"):
        model.predict(scene["coord"], axis_align=np.eye(3))
    none = tmp_path / "test_scan.txt"
    none.write_text("sceneType = Bedroom\n")
    result = model.predict(scene["coord"], axis_align=none)
    assert result.axis_align is None and any("no axisAlignment" in n for n in result.notes)


def test_cli_writes_json_boxes_and_picture(indoor_det_ckpt, model, scene, alignment, tmp_path, capsys):
    folder = tmp_path / "scans" / SCENE
    folder.mkdir(parents=True)
    ply = write_open3d(folder / f"{SCENE}_vh_clean_2.ply", scene["coord"])
    (folder / f"{SCENE}.txt").write_bytes(alignment.read_bytes())
    assert find_scannet_alignment(ply) == folder / f"{SCENE}.txt"
    reference = model.predict(read_cloud(ply), axis_align=alignment)
    min_score = float(np.median(reference.scores))
    out = tmp_path / "out"
    code = main(["infer", "--ckpt", str(indoor_det_ckpt), str(ply), "--out", str(out), "--render",
                 "--min-score", str(min_score), "--no-progress"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"axis alignment {folder / f'{SCENE}.txt'}" in captured.out
    summary = json.loads((out / f"{SCENE}_vh_clean_2.json").read_text())
    keep = reference.scores >= min_score
    assert summary["task"] == "detection" and "axis-aligned room" in summary["frame"]
    assert 0 < len(summary["boxes"]) == keep.sum() < len(reference.boxes)
    boxes = np.array([[*b["center"], *b["size"], b["heading"]] for b in summary["boxes"]])
    np.testing.assert_allclose(boxes, reference.boxes[keep], atol=1e-6)
    assert [b["score"] for b in summary["boxes"]] == pytest.approx(reference.scores[keep].tolist())
    assert {b["class"] for b in summary["boxes"]} <= set(model.class_names)
    np.testing.assert_allclose(summary["axis_align"], reference.axis_align)
    assert not (out / "kitti").exists()
    assert (out / f"{SCENE}_vh_clean_2.png").stat().st_size > 1000
    code = main(["infer", "--ckpt", str(indoor_det_ckpt), str(ply), "--out", str(out),
                 "--axis-align", str(tmp_path / "missing.txt")])  # fmt: skip
    assert code == 2 and "--axis-align" in capsys.readouterr().err
