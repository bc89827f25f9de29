"""``pc3d-viz`` on corrupted scenes: NaN/inf points, truncated/empty/foreign ``.npz``, wrong dtypes
and shapes, missing keys, and ``--out`` paths of the wrong kind. Each is one line naming the file."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pc3d.viz.cli import main

SIZE = ["--width", "64", "--height", "48"]


def scene_npz(path: Path, n: int = 300, **override) -> Path:
    rng = np.random.default_rng(0)
    coord = rng.random((n, 3)).astype(np.float32) * [4, 3, 2]
    data = dict(
        coord=coord,
        segment=(coord[:, 0] > 2).astype(np.int64),
        pred=(coord[:, 1] > 1.5).astype(np.int64),
        class_names=np.array(["wall", "chair"]),
        boxes_pred=np.array([[3, 1.5, 1, 2, 3, 2, 0], [1, 1, 1, 1, 1, 1, 0]], np.float32),
        scores_pred=np.array([0.8, 0.6], np.float32),
        labels_pred=np.array([1, 0]),
    )
    data.update(override)
    np.savez(path, **{k: v for k, v in data.items() if v is not None})
    return path


def run_viz(*args: str | Path) -> tuple[int, str, str]:
    """``pc3d-viz`` in a subprocess (a crash in the renderer must not take the test session down)."""
    env = dict(os.environ, EGL_PLATFORM="surfaceless", OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-m", "pc3d.viz.cli", *map(str, args)], capture_output=True,
                         text=True, timeout=300, env=env)  # fmt: skip
    return res.returncode, res.stdout, res.stderr


def viz_lines(err: str, kind: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith(f"pc3d-viz: {kind}")]


def test_nan_and_inf_points_are_dropped_with_a_warning(tmp_path: Path):
    coord = np.random.default_rng(1).random((300, 3)).astype(np.float32)
    coord[[3, 40]] = np.nan
    coord[77, 2] = np.inf
    coord[90, 0] = -np.inf
    src = scene_npz(tmp_path / "room.npz", coord=coord)
    out = tmp_path / "room.png"
    rc, stdout, err = run_viz(src, "--out", out, "--side-by-side", *SIZE)
    assert rc == 0, err[-3000:]
    assert viz_lines(err, "warning") == [
        f"pc3d-viz: warning: scene 'room' ({src}): dropped 4 of 300 points with NaN/inf coordinates"
    ]
    assert out.stat().st_size > 100 and str(out) in stdout


def test_real_kitti_frame_with_nan_points_is_refused_by_its_reader(samples_dir: Path, tmp_path: Path):
    """A velodyne file with NaN rows is corrupt sensor data: the KITTI reader refuses it, naming file and count."""
    frame = tmp_path / "training" / "velodyne" / "000001.bin"
    frame.parent.mkdir(parents=True)
    pts = np.fromfile(samples_dir / "kitti/training/velodyne/000001.bin", dtype=np.float32).reshape(-1, 4)
    rows = random.Random(3).sample(range(len(pts)), 5)
    pts[rows, random.Random(4).randrange(3)] = np.nan
    pts.tofile(frame)
    rc, _, err = run_viz(frame, "--out", tmp_path / "f.png", *SIZE)
    assert rc == 2, err[-3000:]
    lines = viz_lines(err, "error")
    assert len(lines) == 1 and lines[0].startswith(f"pc3d-viz: error: {frame}: 5 point(s) with NaN/inf"), err
    assert not (tmp_path / "f.png").exists()


def test_all_points_non_finite_is_an_error(tmp_path: Path, capsys):
    src = scene_npz(tmp_path / "void.npz", n=5, coord=np.full((5, 3), np.nan, np.float32), segment=None,
                    pred=None)  # fmt: skip
    assert main([str(src), "--out", str(tmp_path / "v.png"), *SIZE]) == 2
    err = capsys.readouterr().err
    assert viz_lines(err, "error") == [
        f"pc3d-viz: error: scene 'void' ({src}): all 5 points have NaN/inf coordinates; nothing to draw"
    ]
    assert not (tmp_path / "v.png").exists()


def test_nan_boxes_and_scores_are_dropped(tmp_path: Path, capsys):
    from pc3d.viz.scene import NonFiniteWarning, load_npz

    boxes = np.array([[3, 1.5, 1, 2, 3, 2, 0], [np.nan, 1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1, 0]], np.float32)
    src = scene_npz(tmp_path / "b.npz", boxes_pred=boxes, scores_pred=np.array([0.5, 0.9, np.inf], np.float32),
                    labels_pred=np.array([1, 0, 0]))  # fmt: skip
    with pytest.warns(NonFiniteWarning, match=r"dropped 2 of 3 boxes_pred with NaN/inf values"):
        scene = load_npz(src)
    assert scene.boxes_pred.shape == (1, 7) and scene.labels_pred.tolist() == [1]


def test_predictions_of_the_original_points_follow_the_dropped_ones(tmp_path: Path, capsys):
    """A separate --pred file labels the input's points as stored, NaN rows included."""
    from pc3d.viz.cli import _attach_predictions
    from pc3d.viz.scene import load_npz

    coord = np.random.default_rng(2).random((50, 3)).astype(np.float32)
    coord[10] = np.nan
    src = scene_npz(tmp_path / "s.npz", n=50, coord=coord, pred=None, boxes_pred=None, scores_pred=None,
                    labels_pred=None, segment=np.zeros(50, np.int64))  # fmt: skip
    labels = np.arange(50) % 2
    pred = tmp_path / "p.npz"
    np.savez(pred, pred=labels, class_names=np.array(["wall", "chair"]))
    with pytest.warns(UserWarning):
        scene = load_npz(src)
    merged = _attach_predictions(scene, pred)
    assert merged.pred.tolist() == np.delete(labels, 10).tolist()


def test_truncated_npz_at_seeded_random_offsets(tmp_path: Path, capsys):
    data = scene_npz(tmp_path / "good.npz").read_bytes()
    rng = random.Random(18)
    for offset in sorted({0, 1, 2, 30, len(data) - 1, *(rng.randrange(3, len(data) - 1) for _ in range(8))}):
        bad = tmp_path / f"cut{offset}.npz"
        bad.write_bytes(data[:offset])
        assert main([str(bad), "--out", str(tmp_path / "x.png"), *SIZE]) == 2, offset
        lines = viz_lines(capsys.readouterr().err, "error")
        assert len(lines) == 1 and lines[0].startswith(f"pc3d-viz: error: {bad}: not a readable .npz file"), (
            lines
        )
    assert not (tmp_path / "x.png").exists()


def _bad_npz(path: Path, kind: str) -> str:
    """Write a broken scene ``kind`` to ``path``; return the text its error must contain."""
    coord = np.random.default_rng(0).random((20, 3)).astype(np.float32)
    cases = {
        "empty": (b"", "not a readable .npz file: it is empty (0 bytes)"),
        "text": (b"coord: 1 2 3\n", "not a readable .npz file: starts with b'coor'"),
        "bom": ("\ufeffcoord\n".encode(), "not a readable .npz file: starts with b'\\xef\\xbb\\xbfc'"),
        "object": (dict(coord=np.array([object()] * 3)), "Object arrays cannot be loaded"),
        "coord_strings": (dict(coord=np.array([["a", "b", "c"]])), "coord must be a real numeric array, got dtype <U1"),
        "coord_complex": (dict(coord=coord.astype(np.complex64)), "coord must be a real numeric array"),
        "coord_shape": (dict(coord=coord[:, :2]), "coord has shape (20, 2), expected (N, 3)"),
        "segment_float": (dict(coord=coord, segment=np.zeros(20) + 0.5, class_names=np.array(["a"])),
                          "segment must hold integers, got dtype float64"),
        "segment_length": (dict(coord=coord, segment=np.zeros(19, np.int64), class_names=np.array(["a"])),
                           "segment has shape (19,), expected (20,)"),
        "segment_negative": (dict(coord=coord, segment=np.full(20, -3), class_names=np.array(["a"])),
                             "segment has label -3; expected -1 (unlabelled) or a class index"),
        "color_strings": (dict(coord=coord, color=np.full((20, 3), "x")), "color must be numeric RGB, got dtype <U1"),
        "no_coord": (dict(segment=np.zeros(20, np.int64)), "has no 'coord' (N, 3) array"),
        "unknown_key": (dict(coord=coord, colour=coord), "unknown keys ['colour']"),
        "empty_name": (dict(coord=coord, name=np.array([])), "name must be one string, got 0 value(s)"),
        "axis_nan": (dict(coord=coord, axis_align=np.full((4, 4), np.nan)), "axis_align holds NaN/inf"),
        "axis_shape": (dict(coord=coord, axis_align=np.eye(3)), "axis_align has shape (3, 3), expected (4, 4)"),
        "class_numbers": (dict(coord=coord, class_names=np.arange(3)), "class_names must hold strings"),
        "boxes_shape": (dict(coord=coord, boxes_gt=np.zeros((2, 6), np.float32)), "boxes_gt has shape (2, 6)"),
    }  # fmt: skip
    content, needle = cases[kind]
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        np.savez(path, **content)
    return needle


BAD_KINDS = ["empty", "text", "bom", "object", "coord_strings", "coord_complex", "coord_shape", "segment_float",
             "segment_length", "segment_negative", "color_strings", "no_coord", "unknown_key", "empty_name",
             "axis_nan", "axis_shape", "class_numbers", "boxes_shape"]  # fmt: skip


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_scene_file_is_one_line_naming_it(tmp_path: Path, capsys, kind: str):
    bad = tmp_path / f"{kind}.npz"
    needle = _bad_npz(bad, kind)
    assert main([str(bad), "--out", str(tmp_path / "x.png"), *SIZE]) == 2
    err = capsys.readouterr().err
    lines = viz_lines(err, "error")
    assert len(lines) == 1 and str(bad) in lines[0] and needle in lines[0], err
    assert "Traceback" not in err and not (tmp_path / "x.png").exists()


def test_one_bad_scene_of_several_fails_alone(tmp_path: Path, capsys):
    folder = tmp_path / "scenes"
    folder.mkdir()
    scene_npz(folder / "a.npz")
    _bad_npz(folder / "b.npz", "coord_shape")
    scene_npz(folder / "c.npz")
    out = tmp_path / "renders"
    assert main([str(folder), "--out", str(out), *SIZE]) == 1
    err = capsys.readouterr().err
    lines = viz_lines(err, "error")
    assert len(lines) == 1 and str(folder / "b.npz") in lines[0] and "coord has shape (20, 2)" in lines[0]
    assert "1 of 3 scenes failed" in err
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "c.png"]


def test_out_of_the_wrong_kind(tmp_path: Path, capsys):
    src = scene_npz(tmp_path / "room.npz")
    a_file = tmp_path / "renders"
    a_file.write_text("not a folder")
    a_dir = tmp_path / "pic.png"
    a_dir.mkdir()
    cases = [
        (a_file, f"--out {a_file}: is a file; expected a folder for the PNGs"),
        (a_dir, f"--out {a_dir}: is a directory; expected a .png file name"),
        (a_file / "x.png", f"--out {a_file / 'x.png'}: {a_file} is a file, so the folder {a_file} cannot be created"),
        (a_file / "sub", f"--out {a_file / 'sub'}: {a_file} is a file, so the folder {a_file / 'sub'} cannot be"),
        (tmp_path / "x.jpg", "expected a .png file or a folder"),
    ]  # fmt: skip
    for out, needle in cases:
        assert main([str(src), "--out", str(out), *SIZE]) == 2, out
        lines = viz_lines(capsys.readouterr().err, "error")
        assert len(lines) == 1 and needle in lines[0], lines
    assert a_file.read_text() == "not a folder" and not any(a_dir.iterdir())


def test_out_in_a_read_only_folder(tmp_path: Path, capsys, monkeypatch):
    src = scene_npz(tmp_path / "room.npz")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if os.geteuid() == 0:  # root may write anyway; check what an ordinary user gets
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode: False if Path(p) == locked else real(p, mode))
    try:
        assert main([str(src), "--out", str(locked / "sub" / "x.png"), *SIZE]) == 2
    finally:
        locked.chmod(0o755)
    lines = viz_lines(capsys.readouterr().err, "error")
    assert lines == [
        f"pc3d-viz: error: --out {locked / 'sub' / 'x.png'}: cannot write into {locked} (permission denied)"
    ]
    assert not any(locked.iterdir())


def test_two_scenes_with_one_name_would_overwrite_each_other(tmp_path: Path, capsys):
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        scene_npz(tmp_path / d / "room.npz")
    out = tmp_path / "out"
    assert (
        main([str(tmp_path / "a" / "room.npz"), str(tmp_path / "b" / "room.npz"), "--out", str(out), *SIZE])
        == 2
    )
    assert "two scenes are named 'room' and would both write" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())


def test_unreadable_input_and_pred(tmp_path: Path, capsys):
    src = scene_npz(tmp_path / "room.npz")
    assert main([str(src), "--pred", str(tmp_path / "none.npz"), "--out", str(tmp_path / "x.png")]) == 2
    assert "--pred: not found" in capsys.readouterr().err
    broken = tmp_path / "pred.npz"
    broken.write_bytes(src.read_bytes()[:50])
    assert main([str(src), "--pred", str(broken), "--out", str(tmp_path / "x.png"), *SIZE]) == 2
    lines = viz_lines(capsys.readouterr().err, "error")
    assert len(lines) == 1 and f"{broken}: not a readable .npz file: truncated or corrupt" in lines[0]
    assert not (tmp_path / "x.png").exists()
