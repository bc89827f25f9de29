"""Bad input: a clear error naming the file (and line), and the other frames continue."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from kitti_synth import CALIB, LABEL, make_kitti_root  # noqa: E402

from pc3d.data.kitti.calib import Calibration  # noqa: E402
from pc3d.data.kitti.io import read_velodyne  # noqa: E402
from pc3d.data.kitti.labels import parse_label_text  # noqa: E402
from pc3d.data.kitti.preprocess import preprocess  # noqa: E402


def test_velodyne_size_not_multiple_of_16(tmp_path):
    p = tmp_path / "x.bin"
    p.write_bytes(b"\0" * 20)
    with pytest.raises(ValueError, match=r"x\.bin.*20 bytes.*multiple of 16"):
        read_velodyne(p)


def test_velodyne_nan(tmp_path):
    pts = np.zeros((5, 4), np.float32)
    pts[3, 1] = np.nan
    p = tmp_path / "n.bin"
    pts.tofile(p)
    with pytest.raises(ValueError, match=r"n\.bin: 1 point\(s\) with NaN/inf values \(first at point 3\)"):
        read_velodyne(p)


@pytest.mark.parametrize(
    "line, msg",
    [
        (
            "Car 0.00 0 -1.67 657.39 190.13 700.07 223.39 1.41 1.58 4.36 3.18 2.27 34.38",
            "expected 15 or 16 columns, got 14",
        ),
        ("Car 0.00 0 -1.67 657.39 190.13 700.07 abc 1.41 1.58 4.36 3.18 2.27 34.38 -1.58", "non-numeric"),
        ("Car 0.00 0 -1.67 657.39 190.13 700.07 223.39 1.41 nan 4.36 3.18 2.27 34.38 -1.58", "non-finite"),
        (
            "Car 0.00 0 -1.67 657.39 190.13 700.07 223.39 -1.41 1.58 4.36 3.18 2.27 34.38 -1.58",
            "negative box size",
        ),
    ],
)
def test_malformed_label_line(line, msg):
    with pytest.raises(ValueError, match=rf"lbl\.txt:3: .*{msg}"):
        parse_label_text(LABEL.splitlines()[0] + "\n\n" + line + "\n", source="lbl.txt")


def test_label_without_score_column_when_forbidden():
    with pytest.raises(ValueError, match=r"l:1: expected 15 columns, got 16"):
        parse_label_text(LABEL.splitlines()[0] + " 0.9\n", source="l", allow_score=False)


def test_missing_calib_key_and_bad_calib_line():
    text = "\n".join(line for line in CALIB.splitlines() if not line.startswith("R0_rect"))
    with pytest.raises(ValueError, match=r"c\.txt: missing calib key\(s\) \['R0_rect'\]"):
        Calibration.from_text(text, source="c.txt")
    bad = CALIB.replace("P2: 7.215377e+02 ", "P2: ")
    with pytest.raises(ValueError, match=r"c\.txt:3: P2: expected 12 values, got 11"):
        Calibration.from_text(bad, source="c.txt")
    with pytest.raises(ValueError, match=r"c\.txt:1: expected 'key: values'"):
        Calibration.from_text("garbage line\n" + CALIB, source="c.txt")


def test_preprocess_reports_bad_frames_and_continues(tmp_path):
    ids = ["000000", "000001", "000002", "000003", "000004", "000005"]
    root = make_kitti_root(tmp_path / "kitti", ids)
    tr = root / "training"
    (tr / "velodyne" / "000001.bin").write_bytes(b"\0" * 36)  # 36 % 16 != 0
    nan = np.fromfile(tr / "velodyne" / "000002.bin", np.float32).reshape(-1, 4)
    nan[7, 0] = np.nan
    nan.tofile(tr / "velodyne" / "000002.bin")
    (tr / "label_2" / "000003.txt").write_text(LABEL + "Car 0.0 0 1.0 1 2 3\n")  # line 4 malformed
    calib = "\n".join(line for line in CALIB.splitlines() if not line.startswith("Tr_velo_to_cam"))
    (tr / "calib" / "000004.txt").write_text(calib)
    out = tmp_path / "out"
    summary = preprocess(root, out, workers=0, progress=False)
    errors = summary["errors"]
    assert set(errors) == {f"training/{i}" for i in ids[1:5]}
    assert "000001.bin" in errors["training/000001"] and "multiple of 16" in errors["training/000001"]
    assert "000002.bin" in errors["training/000002"] and "NaN" in errors["training/000002"]
    assert "000003.txt:4" in errors["training/000003"]
    assert "000004.txt" in errors["training/000004"] and "Tr_velo_to_cam" in errors["training/000004"]
    assert json.loads((out / "errors.json").read_text()) == errors
    # the good frames 000000 (train, even position) and 000005 (val, odd position) went through
    train = json.loads((out / "infos" / "kitti_infos_train.json").read_text())["frames"]
    val = json.loads((out / "infos" / "kitti_infos_val.json").read_text())["frames"]
    assert [f["frame_id"] for f in train] == ["000000"]
    assert [f["frame_id"] for f in val] == ["000005"]


def test_cli_exit_code_and_idempotent(tmp_path, capsys):
    from pc3d.tools.data_kitti import main

    root = make_kitti_root(tmp_path / "kitti", ["000000", "000001"])
    out = tmp_path / "out"
    assert main(["--root", str(root), "--out", str(out), "--workers", "0", "--no-progress"]) == 0
    info = out / "training" / "frames" / "000000.json"
    mtime = info.stat().st_mtime_ns
    (root / "training" / "velodyne" / "000001.bin").write_bytes(b"\0" * 17)
    # second run: frames already done are skipped (not rewritten), so the now-broken file is not read
    assert main(["--root", str(root), "--out", str(out), "--workers", "0", "--no-progress"]) == 0
    assert info.stat().st_mtime_ns == mtime
    # --overwrite redoes every frame: the broken one is reported (exit 1), the other is rewritten
    rc = main(["--root", str(root), "--out", str(out), "--workers", "2", "--overwrite", "--no-progress"])
    assert rc == 1
    assert "000001.bin" in capsys.readouterr().err
    assert info.stat().st_mtime_ns != mtime
    assert main(["--root", str(tmp_path / "nope"), "--out", str(out), "--no-progress"]) == 2
    assert not list(out.rglob("*.tmp"))


def test_root_without_frames_is_an_error(tmp_path, capsys):
    from pc3d.tools.data_kitti import main

    root = tmp_path / "kitti"
    (root / "training" / "velodyne").mkdir(parents=True)  # a KITTI layout, but no .bin files
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=rf"--root {root}: no frames found"):
        preprocess(root, out, progress=False)
    assert main(["--root", str(root), "--out", str(out), "--workers", "0", "--no-progress"]) == 2
    cap = capsys.readouterr()
    assert f"--root {root}: no frames found" in cap.err and "frames written" not in cap.out
    assert not (out / "infos").exists()  # nothing written


def test_negative_workers_rejected(tmp_path, capsys):
    from pc3d.tools.data_kitti import main

    root = make_kitti_root(tmp_path / "kitti", ["000000"])
    with pytest.raises(SystemExit) as e:
        main(["--root", str(root), "--out", str(tmp_path / "out"), "--workers", "-1"])
    assert e.value.code == 2
    assert "--workers" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--workers must be >= 0"):
        preprocess(root, tmp_path / "out", workers=-1, progress=False)
