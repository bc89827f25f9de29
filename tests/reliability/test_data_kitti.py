"""``pc3d-data kitti`` and the KITTI readers on corrupted, unlucky and killed runs."""

from __future__ import annotations

import random
import struct
from pathlib import Path

import numpy as np
import pytest
from data_procs import (
    assert_no_leftovers,
    kill_first_worker,
    kill_parent_during_work,
    pc3d_data,
    run_data,
    tree_bytes,
)

from pc3d.data.kitti.calib import Calibration
from pc3d.data.kitti.io import read_image_size, read_velodyne
from pc3d.data.kitti.labels import read_label
from pc3d.data.kitti.preprocess import read_split
from pc3d.tools import data_cli


def cli(*args) -> int:
    return data_cli.main(["kitti", *map(str, args), "--workers", "0", "--no-progress"])


def test_velodyne_reader(samples_dir: Path, tmp_path: Path):
    src = (samples_dir / "kitti/training/velodyne/000001.bin").read_bytes()
    p = tmp_path / "v.bin"
    rng = random.Random(18)
    for cut in rng.sample(range(1, len(src)), 6):
        p.write_bytes(src[:cut])
        if cut % 16 == 0:
            assert read_velodyne(p).shape == (cut // 16, 4)
        else:
            with pytest.raises(ValueError, match=f"{p}: size {cut} bytes is not a multiple of 16"):
                read_velodyne(p)
    p.write_bytes(b"")
    with pytest.raises(ValueError, match="empty velodyne file"):
        read_velodyne(p)
    pts = np.frombuffer(src, "<f4").reshape(-1, 4).copy()
    for bad in (np.nan, np.inf):
        q = pts.copy()
        q[5, 1] = bad
        p.write_bytes(q.tobytes())
        with pytest.raises(ValueError, match="1 point.* NaN/inf .*first at point 5"):
            read_velodyne(p)
    p.write_bytes(pts[:1000].astype("<f8").tobytes())  # wrong dtype: float64
    with pytest.raises(ValueError, match="expected little-endian float32"):
        read_velodyne(p)


def test_text_files_truncated_at_random_offsets(samples_dir: Path, tmp_path: Path):
    rng = random.Random(1801)
    calib = (samples_dir / "kitti/training/calib/000001.txt").read_bytes()
    label = (samples_dir / "kitti/training/label_2/000001.txt").read_bytes()
    p = tmp_path / "t.txt"
    for cut in rng.sample(range(1, len(calib) - 2), 6):
        if calib[cut - 1 : cut] == b"\n":
            continue  # a cut at a line end is a shorter but well-formed file
        p.write_bytes(calib[:cut])
        with pytest.raises(ValueError, match=str(p)):
            Calibration.from_file(p)
    for cut in rng.sample(range(1, len(label) - 2), 6):
        if label[cut - 1 : cut] == b"\n" or label[cut : cut + 1] == b"\n":
            continue
        p.write_bytes(label[:cut])
        try:
            read_label(p, allow_score=False)
        except ValueError as e:
            assert str(e).startswith(f"{p}:")
        else:  # only a cut inside the last number can leave 15 valid columns
            assert len(label[:cut].splitlines()[-1].split()) == 15


def test_calib_reader(samples_dir: Path, tmp_path: Path):
    text = (samples_dir / "kitti/training/calib/000001.txt").read_text()
    p = tmp_path / "c.txt"
    lines = text.splitlines()
    r0 = next(i for i, ln in enumerate(lines) if ln.startswith("R0_rect"))
    lines[r0] = "R0_rect: 1 0 0 0 1 0 0 0 0"
    p.write_text("\n".join(lines))
    with pytest.raises(ValueError, match=f"{p}: R0_rect is singular"):
        Calibration.from_file(p)
    p.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert np.array_equal(Calibration.from_file(p).P2, Calibration.from_text(text).P2)
    p.write_bytes(text.encode()[:300] + b"\xff" + text.encode()[300:])
    with pytest.raises(ValueError, match="calib file is not UTF-8"):
        Calibration.from_file(p)
    p.write_text(text.replace("P2:", "P2x:"))
    with pytest.raises(ValueError, match="missing calib key"):
        Calibration.from_file(p)
    (tmp_path / "d.txt").mkdir()
    with pytest.raises(ValueError, match="cannot read calib file"):
        Calibration.from_file(tmp_path / "d.txt")


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("car 0.00 0 -1.57 10 20 30 40 1.5 1.6 3.9 1 1.5 20 0.1", "unknown class 'car'"),
        ("Cär 0.00 0 -1.57 10 20 30 40 1.5 1.6 3.9 1 1.5 20 0.1", "unknown class"),
        ("Motorbike_with_a_very_long_name 0 0 0 1 2 3 4 1 1 1 0 0 9 0", "unknown class"),
        ("Car 0.00 0 -1.57 10 20 30 40 1.5 1.6 3.9 1 1.5 20", "expected 15 columns, got 14"),
        ("Car 0.00 0 -1.57 10 20 30 40 1.5 1.6 3.9 1 1.5 20 0.1 0.9", "expected 15 columns, got 16"),
        ("Car 0.00 1.5 -1.57 10 20 30 40 1.5 1.6 3.9 1 1.5 20 0.1", "occluded must be an integer"),
        ("Car 0.00 0 nan 10 20 30 40 1.5 1.6 3.9 1 1.5 20 0.1", "non-finite"),
    ],
)
def test_label_reader(tmp_path: Path, line: str, match: str):
    p = tmp_path / "l.txt"
    p.write_text("Pedestrian 0.00 0 0.1 1 2 3 4 1.7 0.6 0.8 1 1.5 9 0.1\n" + line + "\n")
    with pytest.raises(ValueError, match=f"{p}:2: {match}"):
        read_label(p, allow_score=False)


def test_image_size_and_split_readers(samples_dir: Path, tmp_path: Path):
    png = (samples_dir / "kitti/training/image_2/000001.png").read_bytes()
    assert read_image_size(samples_dir / "kitti/training/image_2/000001.png") == (1242, 375)
    p = tmp_path / "i.png"
    p.write_bytes(png[:16] + struct.pack(">II", 0, 375) + png[24:])
    with pytest.raises(ValueError, match="image size 0x375"):
        read_image_size(p)
    p.write_bytes(png[:10])
    with pytest.raises(ValueError, match="not a PNG"):
        read_image_size(p)
    s = tmp_path / "train.txt"
    s.write_bytes(b"\xef\xbb\xbf000001\r\n2\n")
    assert read_split(s) == ["000001", "000002"]
    s.write_bytes("000001\n\u0663\n".encode())  # an Arabic-Indic digit is not a KITTI id
    with pytest.raises(ValueError, match=f"{s}:2: expected a frame id of digits"):
        read_split(s)


def test_out_inside_root_or_a_file_is_refused(kitti_copy: Path, tmp_path: Path, capsys):
    before = tree_bytes(kitti_copy)
    for out in (kitti_copy, kitti_copy / "processed", kitti_copy / "training"):
        assert cli("--root", kitti_copy, "--out", out) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("pc3d-data kitti: error: --out") and "\n" not in err
    (tmp_path / "f").write_text("x")
    assert cli("--root", kitti_copy, "--out", tmp_path / "f") == 2
    assert tree_bytes(kitti_copy) == before


def _train(out: Path) -> list[str]:
    import json

    return [f["frame_id"] for f in json.loads((out / "infos/kitti_infos_train.json").read_text())["frames"]]


def test_failed_overwrite_empty_frames_and_verification(kitti_copy: Path, tmp_path: Path, capsys):
    out = tmp_path / "out"
    assert cli("--root", kitti_copy, "--out", out) == 0
    reference = tree_bytes(out)
    fid = _train(out)[0]
    vel = kitti_copy / "training/velodyne" / f"{fid}.bin"
    good = vel.read_bytes()
    vel.write_bytes(b"")  # an empty cloud must never reach the train split
    assert cli("--root", kitti_copy, "--out", out, "--overwrite") == 1
    assert f"frame training/{fid} skipped: {vel}: empty velodyne file" in capsys.readouterr().err
    assert fid not in _train(out)
    assert cli("--root", kitti_copy, "--out", out) == 1, "the failed overwrite must not be forgotten"
    vel.write_bytes(good)
    assert cli("--root", kitti_copy, "--out", out) == 0
    assert tree_bytes(out) == reference
    pts = out / "training/points" / f"{fid}.npy"
    pts.write_bytes(pts.read_bytes()[:-8])  # a truncated output is detected on skip and redone
    assert cli("--root", kitti_copy, "--out", out) == 0
    assert tree_bytes(out) == reference
    assert_no_leftovers(out)


def _real_frames(samples_dir: Path, root: Path, n: int) -> Path:
    src = samples_dir / "kitti" / "training"
    for sub, ext in (("velodyne", "bin"), ("calib", "txt"), ("label_2", "txt"), ("image_2", "png")):
        (root / "training" / sub).mkdir(parents=True)
        for k in range(n):
            data = (src / sub / f"00000{1 + k % 2}.{ext}").read_bytes()
            (root / "training" / sub / f"{k:06d}.{ext}").write_bytes(data)
    return root


@pytest.mark.slow
def test_killed_worker_fails_only_its_frame_and_never_hangs(samples_dir: Path, tmp_path: Path):
    root = _real_frames(samples_dir, tmp_path / "raw", 4)
    assert cli("--root", root, "--out", tmp_path / "ref") == 0
    proc = pc3d_data("kitti", "--root", root, "--out", tmp_path / "out", "--workers", "2", "--no-progress")
    assert kill_first_worker(proc, delay=random.Random(2).uniform(0.0, 0.02)) is not None
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 1, stderr
    assert stderr.count("worker process was killed by SIGKILL") == 1 and "Traceback" not in stderr
    rerun = run_data("kitti", "--root", root, "--out", tmp_path / "out", "--workers", "2", "--no-progress")
    assert rerun.returncode == 0, rerun.stderr
    assert tree_bytes(tmp_path / "out") == tree_bytes(tmp_path / "ref")


@pytest.mark.slow
def test_killed_parent_then_rerun_is_byte_identical(synth_kitti: Path, tmp_path: Path):
    assert cli("--root", synth_kitti, "--out", tmp_path / "ref") == 0
    reference = tree_bytes(tmp_path / "ref")
    proc = pc3d_data(
        "kitti", "--root", synth_kitti, "--out", tmp_path / "out", "--workers", "2", "--no-progress"
    )
    kill_parent_during_work(proc, random.Random(3).uniform(0.0, 0.3))
    assert cli("--root", synth_kitti, "--out", tmp_path / "out") == 0
    assert tree_bytes(tmp_path / "out") == reference
    assert_no_leftovers(tmp_path / "out")
