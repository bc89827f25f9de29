"""``pc3d infer`` as a user runs it: folders of every format, outputs, bad files, bad arguments."""

from __future__ import annotations

import json

import numpy as np
import open3d as o3d
import pytest
import torch

from pc3d.cli import main
from tests.infer.scans import scannet_arrays, write_scannet_formats

pytestmark = pytest.mark.samples


def test_folder_of_every_format_gets_a_label_per_point(seg_ckpt, samples_dir, scannet_data, tmp_path, capsys):
    a = {k: v[::8] for k, v in scannet_arrays(samples_dir, scannet_data).items()}  # 10k points of the scene
    formats = write_scannet_formats(tmp_path / "scans", a)
    (tmp_path / "scans" / "broken.ply").write_bytes(
        b"ply\nformat ascii 1.0\nelement vertex 5\nend_header\n1 2\n"
    )
    out = tmp_path / "scans" / "pred"  # inside the input folder: never read back as input
    code = main(
        ["infer", "--ckpt", str(seg_ckpt), str(tmp_path / "scans"), "--out", str(out), "--no-progress"]
    )
    captured = capsys.readouterr()
    assert code == 1  # one bad file
    assert "broken.ply: FAILED:" in captured.err
    assert "11 of 12 scan(s) done, 1 failed" in captured.out
    for path in formats.values():
        base = out / path.stem
        labels = np.load(base.parent / f"{base.name}.labels.npy")
        assert labels.shape == (len(a["coord"]),) and (labels >= 0).all(), path
        ply = o3d.t.io.read_point_cloud(str(base.parent / f"{base.name}.labels.ply"))
        np.testing.assert_array_equal(ply.point.label.numpy()[:, 0], labels)
        summary = json.loads((base.parent / f"{base.name}.json").read_text())
        assert sum(summary["counts"].values()) == len(labels)
        assert f"{path}: {len(labels):,} points labelled" in captured.out
    assert "normals estimated" in captured.out  # the files without normals


def test_output_plan(tmp_path):
    from pc3d.infer import InputError
    from pc3d.infer.plan import plan_outputs

    (tmp_path / "in" / "sub").mkdir(parents=True)
    sidecars = ("scene0000_00.txt", "scene0000_00_vh_clean_2.labels.ply")  # a ScanNet scan folder's
    for name in ("a.ply", "a.las", "sub/b.npy", "notes.md", ".hidden.ply", *sidecars):
        (tmp_path / "in" / name).write_bytes(b"x")
    (tmp_path / "in" / "out").mkdir()
    (tmp_path / "in" / "out" / "a.labels.ply").write_bytes(b"x")  # an earlier run's output
    plan = plan_outputs([tmp_path / "in", tmp_path / "in" / "a.ply"], tmp_path / "in" / "out")
    names = {i.source.relative_to(tmp_path / "in").as_posix(): i.base.relative_to(plan.out).as_posix()
             for i in plan.items}  # fmt: skip
    assert names == {"a.las": "a", "a.ply": "a_ply", "sub/b.npy": "sub/b"}
    with pytest.raises(InputError, match="would overwrite an input"):
        plan_outputs(
            [tmp_path / "in" / "a.las", tmp_path / "in" / "out" / "a.labels.ply"], tmp_path / "in" / "out"
        )
    with pytest.raises(InputError, match="holds no point-cloud file"):
        plan_outputs([tmp_path / "in" / "sub", tmp_path / "in"], tmp_path / "in" / "sub")


def test_detection_writes_kitti_results_json_and_pictures(det_ckpt, samples_dir, tmp_path, capsys):
    velodyne = samples_dir / "kitti" / "training" / "velodyne"
    out = tmp_path / "out"
    code = main(["infer", "--ckpt", str(det_ckpt), str(velodyne), "--out", str(out), "--render", "--view", "bev",
                 "--min-score", "0.01", "--no-progress"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    for fid in ("000001", "000002"):
        boxes = json.loads((out / f"{fid}.json").read_text())["boxes"]
        lines = (out / "kitti" / f"{fid}.txt").read_text().splitlines()
        assert len(lines) == len(boxes) > 0
        assert all(len(line.split()) == 16 for line in lines)
        assert {b["class"] for b in boxes} <= {"Car", "Pedestrian", "Cyclist"}
        assert (out / f"{fid}.png").stat().st_size > 1000


def test_bad_arguments_exit_2(seg_ckpt, tmp_path, capsys):
    scan = tmp_path / "a.npy"
    np.save(scan, np.zeros((10, 6), np.float32))
    assert (
        main(["infer", "--ckpt", str(tmp_path / "missing.ckpt"), str(scan), "--out", str(tmp_path / "o")])
        == 2
    )
    assert "missing.ckpt: no such file" in capsys.readouterr().err
    assert (
        main(["infer", "--ckpt", str(seg_ckpt), str(tmp_path / "nothing"), "--out", str(tmp_path / "o")]) == 2
    )
    assert "nothing: no such file or folder" in capsys.readouterr().err
    assert main(["infer", "--ckpt", str(seg_ckpt), str(scan)]) == 2  # no --out
    assert "--out" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["infer", "--ckpt", str(seg_ckpt), str(scan), "--out", str(tmp_path / "file")]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    "drop, message",
    [("model", "does not record its network's configuration"), ("datamodule", "datamodule's configuration")],
)
def test_checkpoint_without_its_configuration_is_a_clear_error(seg_ckpt, tmp_path, capsys, drop, message):
    ckpt = torch.load(seg_ckpt, map_location="cpu", weights_only=True)
    if drop == "model":
        del ckpt["hyper_parameters"]["model"]
    else:
        del ckpt["datamodule_hyper_parameters"]
    old = tmp_path / "old.ckpt"
    torch.save(ckpt, old)
    scan = tmp_path / "a.npy"
    np.save(scan, np.zeros((10, 6), np.float32))
    assert main(["infer", "--ckpt", str(old), str(scan), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert message in err and str(old) in err and "Traceback" not in err
    not_a_ckpt = tmp_path / "junk.ckpt"
    not_a_ckpt.write_bytes(b"junk")
    assert main(["infer", "--ckpt", str(not_a_ckpt), str(scan), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert str(not_a_ckpt) in err and "checkpoint" in err and "Traceback" not in err


def test_import_pc3d_stays_light():
    import subprocess
    import sys

    import pc3d
    from pc3d.infer.api import load_model

    assert pc3d.load_model is load_model
    code = "import sys, pc3d; assert 'torch' not in sys.modules and 'lightning' not in sys.modules"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
