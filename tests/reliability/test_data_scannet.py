"""``pc3d-data scannet`` and the ScanNet raw readers on corrupted, unlucky and killed runs."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from data_procs import (
    assert_no_leftovers,
    copy_tree,
    kill_first_worker,
    kill_parent_during_work,
    pc3d_data,
    run_data,
    tree_bytes,
)

from pc3d.data.scannet.preprocess import convert_scene
from pc3d.data.scannet.raw import (
    RawSceneError,
    read_aggregation,
    read_axis_alignment,
    read_label_tsv,
    read_ply_mesh,
    read_segs,
    read_split,
)
from pc3d.io.atomic import TMP_PREFIX
from pc3d.tools import data_cli

S0 = "scene0000_00"
TSV = "scannetv2-labels.combined.tsv"


def _files(scans: Path, sid: str = S0) -> dict[str, Path]:
    d = scans / sid
    return {
        "ply": d / f"{sid}_vh_clean_2.ply",
        "segs": d / f"{sid}_vh_clean_2.0.010000.segs.json",
        "agg": d / f"{sid}.aggregation.json",
        "txt": d / f"{sid}.txt",
    }


def cli(*args) -> int:
    return data_cli.main(["scannet", *map(str, args), "--workers", "1", "--no-progress"])


# ----------------------------------------------------------------------------- readers


def test_ply_truncated_at_random_offsets(samples_dir: Path, scannet_copy: Path, tmp_path: Path):
    rng = random.Random(18)
    for src in (_files(samples_dir / "scannet" / "scans")["ply"], _files(scannet_copy / "scans")["ply"]):
        data = src.read_bytes()
        for cut in [0, 1, 40, *rng.sample(range(len(data)), 5), len(data) - 1]:
            bad = tmp_path / f"cut{cut}.ply"
            bad.write_bytes(data[:cut])
            with pytest.raises(RawSceneError) as e:
                read_ply_mesh(bad)
            assert e.value.path == str(bad) and "\n" not in str(e.value)
        bad.write_bytes(data + b"\x00" * 7)
        with pytest.raises(RawSceneError, match="7 unexpected bytes"):
            read_ply_mesh(bad)


def test_json_files_truncated_at_random_offsets(samples_dir: Path, tmp_path: Path):
    rng = random.Random(1800)
    f = _files(samples_dir / "scannet" / "scans")
    for key, reader in (("segs", lambda p: read_segs(p, None)), ("agg", read_aggregation)):
        data = f[key].read_bytes()
        for cut in [0, *rng.sample(range(1, len(data) - 1), 5)]:
            bad = tmp_path / f"{key}{cut}.json"
            bad.write_bytes(data[:cut])
            with pytest.raises(RawSceneError, match="empty file|invalid JSON") as e:
                reader(bad)
            assert e.value.path == str(bad)


def test_nan_alignment_keeps_the_scene_out_of_the_train_split(scannet_copy: Path, tmp_path: Path, capsys):
    raw, meta, out = scannet_copy / "scans", scannet_copy / "meta", tmp_path / "out"
    sid = read_split(meta / "scannetv2_train.txt")[0]
    txt = _files(raw, sid)["txt"]
    lines = txt.read_text().splitlines()
    k = next(i for i, ln in enumerate(lines) if ln.startswith("axisAlignment"))
    vals = lines[k].split("=")[1].split()
    vals[3] = "nan"
    lines[k] = "axisAlignment = " + " ".join(vals)
    txt.write_text("\n".join(lines) + "\n")
    assert cli("--raw", raw, "--meta", meta, "--out", out) == 1
    assert f"{sid}: {txt}: axisAlignment: contains NaN/inf" in capsys.readouterr().err
    assert sid not in _split(out) and not (out / "scans" / sid).exists()


def _ply(header_counts: str, body: bytes = b"") -> bytes:
    head = "ply\nformat binary_little_endian 1.0\n" + header_counts + "end_header\n"
    return head.encode() + body


@pytest.mark.parametrize(
    ("vertex_line", "match"),
    [
        ("element vertex abc\n", "count 'abc' is not an integer"),
        ("element vertex 3.5\n", "count '3.5' is not an integer"),
        ("element vertex -2\n", "negative count"),
        ("element vertex\n", "expected 'element <name> <count>'"),
        ("element vertex 0\n", "0 vertices"),
    ],
)
def test_ply_header_counts(tmp_path: Path, vertex_line: str, match: str):
    p = tmp_path / "m.ply"
    p.write_bytes(_ply(vertex_line + "property float x\nproperty float y\nproperty float z\n"))
    with pytest.raises(RawSceneError, match=match):
        read_ply_mesh(p)


def test_ply_nan_vertex_and_wrong_dtype(tmp_path: Path):
    p = tmp_path / "m.ply"
    xyz = np.array([[0, 0, 0], [1, np.nan, 0]], "<f4")
    p.write_bytes(
        _ply("element vertex 2\nproperty float x\nproperty float y\nproperty float z\n", xyz.tobytes())
    )
    with pytest.raises(RawSceneError, match="NaN/inf .* first at vertex 1"):
        read_ply_mesh(p)
    p.write_bytes(_ply("element vertex 1\nproperty int x\nproperty int y\nproperty int z\n", b"\0" * 12))
    with pytest.raises(RawSceneError, match="expected float"):
        read_ply_mesh(p)


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"", "empty file"),
        (b'{"segIndices": [0, 1.5, 2]}', "expected a flat list of integers, found 1.5"),
        (b'{"segIndices": [0, "1", 2]}', "found '1'"),
        (b'{"segIndices": [0, true, 2]}', "found True"),
        (b'{"segIndices": [[0], [1]]}', "flat list"),
        (b'{"segIndices": [0, -1, 2]}', "negative segment id"),
        (b'{"segIndices": [0, 1]}', "2 entries but the mesh has 3"),
        (b'{"segIndices": [0, 1, 2]', "invalid JSON"),
        (b'{"segIndices": "\xff"}', "not UTF-8"),
    ],
)
def test_segs_reader(tmp_path: Path, body: bytes, match: str):
    p = tmp_path / "s.segs.json"
    p.write_bytes(body)
    with pytest.raises(RawSceneError, match=match):
        read_segs(p, 3)


def test_segs_with_bom_is_read(tmp_path: Path):
    p = tmp_path / "s.segs.json"
    p.write_bytes(b"\xef\xbb\xbf" + json.dumps({"segIndices": [4, 4, 5]}).encode())
    assert read_segs(p, 3).tolist() == [4, 4, 5]


@pytest.mark.parametrize(
    ("group", "match"),
    [
        (
            {"objectId": 0, "label": "chair", "segments": [1, 2.5]},
            r"segments: expected a flat list of integers",
        ),
        ({"objectId": "0", "label": "chair", "segments": [1]}, r"objectId: expected an integer, got '0'"),
        ({"objectId": 0, "id": 1.0, "label": "chair", "segments": [1]}, r"\.id: expected an integer"),
        ({"objectId": 0, "label": 7, "segments": [1]}, "label: expected a non-empty string"),
        ({"objectId": 0, "segments": [1]}, r"missing \['label'\]"),
    ],
)
def test_aggregation_reader(tmp_path: Path, group: dict, match: str):
    p = tmp_path / "a.aggregation.json"
    p.write_text(json.dumps({"segGroups": [group]}))
    with pytest.raises(RawSceneError, match=match):
        read_aggregation(p)


def test_missing_segments_are_an_error_naming_scene_and_file(samples_dir: Path, tmp_path: Path):
    scans = copy_tree(samples_dir / "scannet" / "scans", tmp_path / "scans")
    labels = read_label_tsv(samples_dir / "scannet" / "meta" / TSV)
    f = _files(scans)
    agg = json.loads(f["agg"].read_text())
    agg["segGroups"][3]["segments"].append(987654321)
    f["agg"].write_text(json.dumps(agg))
    with pytest.raises(RawSceneError) as e:
        convert_scene(scans / S0, labels)
    msg = str(e.value)
    assert e.value.path == str(f["agg"]) and f"scene {S0}" in msg and f["segs"].name in msg
    assert "987654321" in msg


@pytest.mark.parametrize(
    ("matrix", "match"),
    [
        ("1 0 0 0 0 1 0 0 0 0 1 nan 0 0 0 1", "NaN/inf"),
        ("1 0 0 inf 0 1 0 0 0 0 1 0 0 0 0 1", "NaN/inf"),
        ("1 0 0 0 0 1 0 0 0 0 0 0 0 0 0 1", "singular"),
        ("1 0 0 0 0 1 0 0 0 0 1 0 0 0 1 1", "last row"),
        ("1 0 0 0 0 1 0 0 0 0 1 0", "expected 16 numbers, got 12"),
        ("1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 x", "expected 16 numbers"),
    ],
)
def test_axis_alignment_reader(tmp_path: Path, matrix: str, match: str):
    p = tmp_path / "s.txt"
    p.write_text(f"sceneType = bedroom\naxisAlignment = {matrix}\n")
    with pytest.raises(RawSceneError, match=match):
        read_axis_alignment(p)


def test_label_tsv_and_split_encodings(samples_dir: Path, tmp_path: Path):
    meta = samples_dir / "scannet" / "meta"
    good = read_label_tsv(meta / TSV)
    data = (meta / TSV).read_bytes()
    bom = tmp_path / "bom.tsv"
    bom.write_bytes(b"\xef\xbb\xbf" + data)
    assert read_label_tsv(bom) == good
    latin = tmp_path / "latin.tsv"
    latin.write_bytes(data[:200] + "é".encode("latin-1") + data[200:])
    with pytest.raises(RawSceneError, match="line 2: not UTF-8"):
        read_label_tsv(latin)
    (tmp_path / "empty.tsv").write_bytes(b"")
    with pytest.raises(RawSceneError, match="empty file"):
        read_label_tsv(tmp_path / "empty.tsv")
    split = tmp_path / "s.txt"
    split.write_bytes(b"\xef\xbb\xbfscene0000_00\r\nscene0001_00\n")
    assert read_split(split) == ["scene0000_00", "scene0001_00"]
    split.write_bytes(b"scene0000_00\nscene0000_00\n")
    with pytest.raises(RawSceneError, match="line 2: scene0000_00 is already listed on line 1"):
        read_split(split)
    split.write_bytes("scene0000_00\nszene0001_00\n".encode("utf-16"))
    with pytest.raises(RawSceneError, match="not UTF-8"):
        read_split(split)


def test_missing_and_unreadable_files(samples_dir: Path, tmp_path: Path):
    with pytest.raises(RawSceneError, match="file not found"):
        read_ply_mesh(tmp_path / "none.ply")
    (tmp_path / "dir.ply").mkdir()  # unreadable even for root, unlike chmod 000
    with pytest.raises(RawSceneError, match="cannot read"):
        read_ply_mesh(tmp_path / "dir.ply")


# ----------------------------------------------------------------------------- the tool


def test_out_overlapping_the_input_is_refused_and_raw_is_untouched(
    scannet_copy: Path, tmp_path: Path, capsys
):
    before = tree_bytes(scannet_copy)
    raw, meta = scannet_copy / "scans", scannet_copy / "meta"
    for out in (scannet_copy, raw, raw / S0, meta / "x"):
        assert cli("--raw", raw, "--meta", meta, "--out", out) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("pc3d-data scannet: error: --out ") and "\n" not in err
    (tmp_path / "f").write_text("x")
    assert cli("--raw", raw, "--meta", meta, "--out", tmp_path / "f") == 2
    assert "not a folder" in capsys.readouterr().err
    assert tree_bytes(scannet_copy) == before


def test_bad_meta_is_a_one_line_error(scannet_copy: Path, tmp_path: Path, capsys):
    meta = scannet_copy / "meta"
    (meta / "scannetv2_val.txt").write_bytes(b"scene0000_00\nnot-a-scene\n")
    assert cli("--raw", scannet_copy / "scans", "--meta", meta, "--out", tmp_path / "o") == 2
    err = capsys.readouterr().err.strip()
    assert "scannetv2_val.txt: line 2: expected a scene id" in err and "\n" not in err


def _split(out: Path, name: str = "train") -> list[str]:
    return (out / "splits" / f"{name}.txt").read_text().split()


def test_failed_overwrite_is_redone_and_outputs_are_verified(scannet_copy: Path, tmp_path: Path, capsys):
    raw, meta, out = scannet_copy / "scans", scannet_copy / "meta", tmp_path / "out"
    assert cli("--raw", raw, "--meta", meta, "--out", out) == 0
    reference = tree_bytes(out)
    train = _split(out)
    victim = train[0]
    ply = _files(raw, victim)["ply"]
    good = ply.read_bytes()
    ply.write_bytes(good[: len(good) // 2])
    assert cli("--raw", raw, "--meta", meta, "--out", out, "--overwrite") == 1
    err = capsys.readouterr().err
    assert f"{victim}: {ply}: truncated" in err
    assert victim not in _split(out), "a scene whose overwrite failed must leave the split lists"
    # A plain rerun does not report the stale scene as finished: it redoes it, and fails again.
    assert cli("--raw", raw, "--meta", meta, "--out", out) == 1
    assert "1 failed" in capsys.readouterr().out
    ply.write_bytes(good)
    assert cli("--raw", raw, "--meta", meta, "--out", out) == 0
    assert "1 converted" in capsys.readouterr().out
    assert tree_bytes(out) == reference
    # A damaged output is detected on skip and redone.
    coord = out / "scans" / victim / "coord.npy"
    data = bytearray(coord.read_bytes())
    data[-1] ^= 0xFF
    coord.write_bytes(bytes(data))
    assert cli("--raw", raw, "--meta", meta, "--out", out) == 0
    assert f"{victim}: redoing, its output is not intact" in capsys.readouterr().out
    assert tree_bytes(out) == reference


def test_empty_mesh_is_rejected_and_leftovers_are_cleaned(scannet_copy: Path, tmp_path: Path, capsys):
    raw, meta, out = scannet_copy / "scans", scannet_copy / "meta", tmp_path / "out"
    sid = read_split(meta / "scannetv2_train.txt")[0]
    ply = _files(raw, sid)["ply"]
    ply.write_bytes(_ply("element vertex 0\nproperty float x\nproperty float y\nproperty float z\n"))
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    stale = out / "scans" / f"{TMP_PREFIX}{int(dead.stdout)}-{sid}-abcd"
    stale.mkdir(parents=True)
    (stale / "coord.npy").write_bytes(b"partial")
    assert cli("--raw", raw, "--meta", meta, "--out", out) == 1
    assert f"{ply}: the mesh has 0 vertices" in capsys.readouterr().err
    assert sid not in _split(out)
    assert not stale.exists()
    assert_no_leftovers(out)


def test_existing_foreign_folder_is_never_replaced(scannet_copy: Path, tmp_path: Path, capsys):
    raw, meta, out = scannet_copy / "scans", scannet_copy / "meta", tmp_path / "out"
    foreign = out / "scans" / S0
    foreign.mkdir(parents=True)
    (foreign / "notes.txt").write_text("mine")
    assert cli("--raw", raw, "--meta", meta, "--out", out, "--overwrite") == 1
    assert "was not written by this tool" in capsys.readouterr().err
    assert (foreign / "notes.txt").read_text() == "mine"


def _real_scenes(samples_dir: Path, root: Path, n: int) -> Path:
    """``n`` copies of the real scene0000_00 under ids scene000k_00, and a meta folder."""
    src = samples_dir / "scannet" / "scans" / S0
    for k in range(n):
        sid = f"scene{k:04d}_00"
        (root / "scans" / sid).mkdir(parents=True)
        for f in src.iterdir():
            if f.name.endswith("labels.ply"):
                continue
            (root / "scans" / sid / f.name.replace(S0, sid)).write_bytes(f.read_bytes())
    meta = copy_tree(samples_dir / "scannet" / "meta", root / "meta")
    (meta / "scannetv2_train.txt").write_text("".join(f"scene{k:04d}_00\n" for k in range(n)))
    for s in ("val", "test"):
        (meta / f"scannetv2_{s}.txt").write_text("")
    return root


@pytest.mark.slow
def test_killed_worker_fails_only_its_scene(samples_dir: Path, tmp_path: Path):
    root = _real_scenes(samples_dir, tmp_path / "raw", 3)
    args = ["scannet", "--raw", root / "scans", "--meta", root / "meta", "--workers", "2", "--no-progress"]
    assert cli("--raw", root / "scans", "--meta", root / "meta", "--out", tmp_path / "ref") == 0
    out = tmp_path / "out"
    proc = pc3d_data(*args, "--out", out)
    killed = kill_first_worker(proc, delay=random.Random(1).uniform(0.0, 0.05))
    stdout, stderr = proc.communicate(timeout=600)
    assert killed is not None
    assert proc.returncode == 1, stderr
    assert "2 converted, 0 skipped (finished), 1 failed" in stdout
    assert "worker process was killed by SIGKILL" in stderr and "Traceback" not in stderr
    rerun = run_data(*args, "--out", out)
    assert rerun.returncode == 0 and "1 converted, 2 skipped" in rerun.stdout
    assert tree_bytes(out) == tree_bytes(tmp_path / "ref")


@pytest.mark.slow
def test_killed_parent_then_rerun_is_byte_identical(synth_scannet: Path, tmp_path: Path):
    args = ["scannet", "--raw", synth_scannet / "scans", "--meta", synth_scannet / "meta", "--workers", "2",
            "--no-progress"]  # fmt: skip
    assert (
        cli("--raw", synth_scannet / "scans", "--meta", synth_scannet / "meta", "--out", tmp_path / "ref")
        == 0
    )
    reference = tree_bytes(tmp_path / "ref")
    rng = random.Random(1818)
    for k in range(2):
        out = tmp_path / f"out{k}"
        if k == 1:  # killed during an --overwrite of a finished output
            assert cli("--raw", synth_scannet / "scans", "--meta", synth_scannet / "meta", "--out", out) == 0
        proc = pc3d_data(*args, "--out", out, *(["--overwrite"] if k == 1 else []))
        kill_parent_during_work(proc, rng.uniform(0.0, 0.6))
        assert cli("--raw", synth_scannet / "scans", "--meta", synth_scannet / "meta", "--out", out) == 0
        assert tree_bytes(out) == reference
        assert_no_leftovers(out)
