"""``pc3d-viz`` command line: PNG output and clear errors for bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from viz_checks import assert_not_blank, color_pixels

from pc3d.viz import colors as C
from pc3d.viz.cli import main


def _npz(path: Path, with_pred: bool = True) -> Path:
    rng = np.random.default_rng(0)
    coord = rng.random((400, 3)).astype(np.float32) * [4, 3, 2]
    seg = (coord[:, 0] > 2).astype(np.int64)
    data = dict(coord=coord, segment=seg, class_names=np.array(["wall", "chair"]))
    if with_pred:
        data.update(
            pred=(coord[:, 1] > 1.5).astype(np.int64),
            boxes_pred=np.array([[3, 1.5, 1, 2, 3, 2, 0]], np.float32),
            scores_pred=np.array([0.8], np.float32),
            labels_pred=np.array([1]),
        )
    np.savez(path, **data)
    return path


def test_png_from_npz(tmp_path, capsys):
    from PIL import Image

    src = _npz(tmp_path / "room.npz")
    out = tmp_path / "out" / "room.png"
    rc = main(
        [
            str(src),
            "--out",
            str(out),
            "--view",
            "bev",
            "--color-by",
            "gt",
            "--width",
            "200",
            "--height",
            "150",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    assert str(out) in capsys.readouterr().out
    img = np.asarray(Image.open(out).convert("RGB"))
    assert img.shape == (150, 200, 3)
    assert_not_blank(img, 0.1)
    assert color_pixels(img, C.SCANNET_COLORS["chair"], 4) > 50


def test_side_by_side_and_folder_output(tmp_path, capsys):
    _npz(tmp_path / "a.npz")
    _npz(tmp_path / "b.npz")
    rc = main(
        [
            str(tmp_path),
            "--out",
            str(tmp_path / "renders"),
            "--side-by-side",
            "--width",
            "240",
            "--height",
            "120",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "renders").iterdir()) == ["a.png", "b.png"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["{tmp}/does_not_exist.npz", "--out", "{tmp}/x.png"], "does_not_exist.npz"),
        (["{tmp}/notes.txt", "--out", "{tmp}/x.png"], "notes.txt: unsupported file type .txt"),
        (["{tmp}/room.npz", "--out", "{tmp}/x.jpg"], "expected a .png"),
        (["{tmp}/plain.npz", "--out", "{tmp}/x.png", "--side-by-side"], "has no predictions"),
        (["{tmp}/plain.npz", "--out", "{tmp}/x.png", "--color-by", "pred"], "no predicted labels"),
        (["{tmp}/room.npz", "--pred", "{tmp}/nope.npz", "--out", "{tmp}/x.png"], "nope.npz"),
        (["{tmp}/broken.npz", "--out", "{tmp}/x.png"], "broken.npz: not a readable .npz"),
    ],
)
def test_bad_input_is_a_clear_error(tmp_path, capsys, args, needle):
    _npz(tmp_path / "room.npz")
    _npz(tmp_path / "plain.npz", with_pred=False)
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "broken.npz").write_bytes(b"not a zip")
    rc = main([a.format(tmp=tmp_path) for a in args])
    err = capsys.readouterr().err
    assert rc == 2
    assert needle in err and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()


def test_bad_option_value(capsys):
    assert main(["x.npz", "--view", "sideways"]) == 2
    assert "invalid choice: 'sideways'" in capsys.readouterr().err


def test_window_without_display(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    rc = main([str(_npz(tmp_path / "room.npz"))])
    assert rc == 1
    assert "no display" in capsys.readouterr().err


def test_module_entry_point_reports_without_traceback(tmp_path):
    missing = tmp_path / "scene0999_00"
    r = subprocess.run(
        [sys.executable, "-m", "pc3d.viz.cli", str(missing), "--out", str(tmp_path / "x.png")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    assert f"pc3d-viz: error: input not found: {missing}" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.samples
def test_cli_on_real_samples(samples_dir, tmp_path, capsys):
    from PIL import Image

    kitti = samples_dir / "kitti" / "training" / "velodyne" / "000001.bin"
    out = tmp_path / "kitti.png"
    rc = main(
        [
            str(kitti),
            "--out",
            str(out),
            "--view",
            "oblique",
            "--width",
            "320",
            "--height",
            "240",
            "--no-annotate",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    img = np.asarray(Image.open(out).convert("RGB"))
    assert_not_blank(img, 0.05)
    assert color_pixels(img, C.GT_BOX_COLOR, 10) > 30
    raw_ply = samples_dir / "scannet" / "scans" / "scene0000_00" / "scene0000_00_vh_clean_2.ply"
    rc = main(
        [
            str(raw_ply),
            "--out",
            str(tmp_path / "room.png"),
            "--view",
            "bev",
            "--width",
            "160",
            "--height",
            "120",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    assert_not_blank(np.asarray(Image.open(tmp_path / "room.png").convert("RGB")), 0.2)
