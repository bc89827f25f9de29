"""ScanNet preprocessing on the real scene0000_00 and on broken copies of it."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import pytest

from pc3d.data.scannet import (
    SCANNET20_CLASSES,
    VALID_CLASS_IDS_20,
    VALID_CLASS_IDS_200,
    align_points,
    convert_scene,
    load_scene,
    read_meta,
)
from pc3d.data.scannet.classes import DET_NYU40_IDS
from pc3d.data.scannet.preprocess import vertex_normals
from pc3d.data.scannet.raw import RawSceneError, read_aggregation, read_label_tsv, read_segs
from pc3d.tools import data_scannet

SCENE = "scene0000_00"


@pytest.fixture(scope="module")
def scannet_dir(samples_dir: Path) -> Path:
    return samples_dir / "scannet"


@pytest.fixture(scope="module")
def labels(scannet_dir):
    return read_label_tsv(scannet_dir / "meta" / "scannetv2-labels.combined.tsv")


@pytest.fixture(scope="module")
def converted(scannet_dir, labels):
    return convert_scene(scannet_dir / "scans" / SCENE, labels)


def _run_tool(raw: Path, meta: Path, out: Path, *extra: str) -> int:
    parser = argparse.ArgumentParser()
    data_scannet.add_arguments(parser)
    return data_scannet.run(
        parser.parse_args(["--raw", str(raw), "--meta", str(meta), "--out", str(out), *extra])
    )


@pytest.mark.samples
def test_real_scene_arrays(converted):
    a, meta = converted["arrays"], converted["meta"]
    n = 81369
    assert meta["num_points"] == n
    assert a["coord"].shape == (n, 3) and a["coord"].dtype == np.float32
    assert a["color"].shape == (n, 3) and a["color"].dtype == np.uint8
    assert a["normal"].dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a["normal"], axis=1), 1.0, atol=1e-5)
    assert (
        a["segment20"].dtype == np.int16
        and a["segment200"].dtype == np.int16
        and a["instance"].dtype == np.int32
    )
    assert a["segment20"].min() >= -1 and a["segment20"].max() < 20
    assert a["segment200"].min() >= -1 and a["segment200"].max() < 200
    assert a["instance"].min() >= -1 and a["instance"].max() <= 54
    # every labelled point belongs to an instance; instance ids are the segGroup ids
    assert (a["instance"][a["segment20"] >= 0] >= 0).all()


@pytest.mark.samples
def test_real_scene_segment20_counts(converted):
    seg = converted["arrays"]["segment20"]
    counts = {SCANNET20_CLASSES[c]: int((seg == c).sum()) for c in range(20)}
    # a bedroom: wall and floor are the largest classes; bed, cabinet, curtain, sink present
    assert counts["wall"] > 10000 and counts["floor"] > 8000
    assert max(counts, key=counts.get) == "wall"
    for c in ("bed", "cabinet", "curtain", "sink", "door", "window", "desk", "refrigerator"):
        assert counts[c] > 100, c
    assert counts["bathtub"] == 0 and counts["picture"] == 0
    ignore = (seg == -1).mean()
    assert 0.15 < ignore < 0.45


@pytest.mark.samples
def test_labels_match_independent_pointcept_rule(scannet_dir, labels, converted):
    """Recompute segment20/segment200/instance group by group with np.isin (Pointcept's loop)."""
    scene = scannet_dir / "scans" / SCENE
    seg = read_segs(scene / f"{SCENE}_vh_clean_2.0.010000.segs.json")
    s20 = np.full(seg.shape, -1, np.int64)
    s200 = np.full(seg.shape, -1, np.int64)
    inst = np.full(seg.shape, -1, np.int64)
    for g in read_aggregation(scene / f"{SCENE}.aggregation.json"):
        nyu = labels.raw_to_nyu40.get(g.label, 0)
        tid = labels.raw_to_id.get(g.label, 0)
        idx = np.where(np.isin(seg, g.segments))[0]
        s20[idx] = VALID_CLASS_IDS_20.index(nyu) if nyu in VALID_CLASS_IDS_20 else -1
        s200[idx] = VALID_CLASS_IDS_200.index(tid) if tid in VALID_CLASS_IDS_200 else -1
        inst[idx] = g.id
    a = converted["arrays"]
    np.testing.assert_array_equal(a["segment20"], s20)
    np.testing.assert_array_equal(a["segment200"], s200)
    np.testing.assert_array_equal(a["instance"], inst)


def test_normals_area_weighted_against_loop():
    r = np.random.default_rng(0)
    v = r.random((30, 3))
    f = np.array([r.choice(30, 3, replace=False) for _ in range(60)])
    ref = np.zeros((30, 3))
    for tri in f:
        cr = np.cross(v[tri[1]] - v[tri[0]], v[tri[2]] - v[tri[0]])  # length = 2 * area
        ref[tri] += cr
    used = np.unique(f)
    ref = ref[used] / np.linalg.norm(ref[used], axis=1, keepdims=True)
    np.testing.assert_allclose(vertex_normals(v, f)[used], ref, atol=1e-5)


@pytest.mark.samples
def test_alignment_boxes_and_floor(scannet_dir, labels, converted):
    a = converted["arrays"]
    m = a["axis_align"]
    assert m.shape == (4, 4) and np.isclose(m[0, 0], 0.945519) and np.isclose(m[2, 3], -0.06435)
    aligned = align_points(a["coord"], m)
    floor = aligned[a["segment20"] == 1, 2]
    assert abs(np.median(floor)) < 0.05  # floor at z ~ 0 after alignment
    assert abs(np.median(a["coord"][a["segment20"] == 1, 2])) > 0.05  # and not before
    boxes, lab = a["boxes"], a["box_labels"]
    assert boxes.dtype == np.float32 and lab.dtype == np.int64
    assert len(boxes) == 22 and lab.min() >= 0 and lab.max() < 18
    assert (boxes[:, 6] == 0).all() and (boxes[:, 3:6] > 0).all()
    lo, hi = aligned.min(0), aligned.max(0)
    assert (boxes[:, :3] - boxes[:, 3:6] / 2 >= lo - 1e-5).all() and (
        boxes[:, :3] + boxes[:, 3:6] / 2 <= hi + 1e-5
    ).all()
    # one box per detection-class instance (in object-id order), each the min/max extent of its
    # instance's aligned points, as mmdetection3d's load_scannet_data.py computes it
    m64 = m.astype(np.float64)
    aligned64 = np.c_[a["coord"].astype(np.float64), np.ones(len(a["coord"]))] @ m64.T
    groups = read_aggregation(scannet_dir / "scans" / SCENE / f"{SCENE}.aggregation.json")
    want_boxes, want_labels = [], []
    for g in sorted(groups, key=lambda g: g.object_id):
        nyu = labels.raw_to_nyu40.get(g.label, 0)
        pts = aligned64[a["instance"] == g.id, :3]
        if nyu not in DET_NYU40_IDS or len(pts) == 0:
            continue
        lo_i, hi_i = pts.min(0), pts.max(0)
        want_boxes.append([*((lo_i + hi_i) / 2), *(hi_i - lo_i), 0.0])
        want_labels.append(DET_NYU40_IDS.index(nyu))
    np.testing.assert_allclose(boxes, np.asarray(want_boxes), rtol=0, atol=1e-5)
    np.testing.assert_array_equal(lab, want_labels)
    bed = boxes[lab == 1]
    assert len(bed) == 1 and 1.5 < bed[0, 3:5].max() < 2.6  # one bed, ~2 m long


@pytest.mark.samples
def test_unknown_category_is_ignored_and_counted(scannet_dir, labels, converted):
    meta = converted["meta"]
    assert meta["unknown_categories"]["trashcan"] == 3
    assert "trashcan" not in labels.raw_to_nyu40
    groups = read_aggregation(scannet_dir / "scans" / SCENE / f"{SCENE}.aggregation.json")
    trash = [g.id for g in groups if g.label == "trashcan"]
    a = converted["arrays"]
    mask = np.isin(a["instance"], trash)
    assert mask.sum() > 0 and (a["segment20"][mask] == -1).all()
    assert meta["unknown_category_points"] >= mask.sum()


@pytest.mark.samples
def test_tool_writes_loads_skips_and_overwrites(scannet_dir, converted, tmp_path, capsys):
    out = tmp_path / "out"
    assert _run_tool(scannet_dir / "scans", scannet_dir / "meta", out, "--workers", "1", "--no-progress") == 0
    log = capsys.readouterr().out
    assert "1 converted" in log and "'trashcan' x3" in log
    scene = load_scene(out / "scans" / SCENE)
    for k, v in converted["arrays"].items():
        np.testing.assert_array_equal(scene[k], v)
        assert scene[k].dtype == v.dtype
    assert read_meta(out / "scans" / SCENE)["num_points"] == 81369
    assert (out / "splits" / "train.txt").read_text().split() == [SCENE]
    assert (out / "splits" / "val.txt").read_text() == ""
    mtime = os.stat(out / "scans" / SCENE / "coord.npy").st_mtime_ns
    assert _run_tool(scannet_dir / "scans", scannet_dir / "meta", out, "--no-progress") == 0
    assert "1 skipped" in capsys.readouterr().out
    assert os.stat(out / "scans" / SCENE / "coord.npy").st_mtime_ns == mtime
    assert _run_tool(scannet_dir / "scans", scannet_dir / "meta", out, "--overwrite", "--no-progress") == 0
    assert "1 converted" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "scans").iterdir()) == [SCENE]  # no tmp/old folders left
    with pytest.raises(ValueError, match="meta.json"):
        load_scene(out / "scans")


def _copy_scene(src: Path, dst_root: Path, new_id: str) -> Path:
    """Symlink the raw files of ``src`` under a new scene id (files to be broken are replaced)."""
    dst = dst_root / new_id
    dst.mkdir(parents=True)
    for f in src.iterdir():
        (dst / f.name.replace(src.name, new_id)).symlink_to(f)
    return dst


def _broken_tree(scannet_dir: Path, tmp_path: Path) -> tuple[Path, Path]:
    raw = tmp_path / "raw"
    src = scannet_dir / "scans" / SCENE
    _copy_scene(src, raw, SCENE)
    bad = _copy_scene(src, raw, "scene0001_00")
    meta = tmp_path / "meta"
    meta.mkdir()
    for f in (scannet_dir / "meta").iterdir():
        (meta / f.name).symlink_to(f)
    return raw, bad


def _replace(path: Path, data: bytes) -> None:
    path.unlink()
    path.write_bytes(data)


@pytest.mark.parametrize("broken", ["truncated_ply", "segs_length", "missing_aggregation"])
@pytest.mark.samples
def test_bad_scene_is_reported_others_finish(scannet_dir, tmp_path, capsys, broken):
    raw, bad = _broken_tree(scannet_dir, tmp_path)
    ply = bad / "scene0001_00_vh_clean_2.ply"
    segs = bad / "scene0001_00_vh_clean_2.0.010000.segs.json"
    agg = bad / "scene0001_00.aggregation.json"
    if broken == "truncated_ply":
        data = ply.read_bytes()
        _replace(ply, data[: len(data) // 2])
        culprit, what = ply.name, "truncated"
    elif broken == "segs_length":
        obj = json.loads(segs.read_text())
        obj["segIndices"] = obj["segIndices"][:-5]
        _replace(segs, json.dumps(obj).encode())
        culprit, what = segs.name, "81364 entries but the mesh has 81369"
    else:
        agg.unlink()
        culprit, what = agg.name, "file not found"
    out = tmp_path / "out"
    rc = _run_tool(raw, tmp_path / "meta", out, "--workers", "2", "--no-progress")
    err = capsys.readouterr().err
    assert rc == 1
    assert "scene0001_00" in err and culprit in err and what in err
    assert (out / "scans" / SCENE / "meta.json").is_file()  # the good scene finished
    assert not (out / "scans" / "scene0001_00").exists()  # nothing half-written
    assert [p.name for p in (out / "scans").iterdir()] == [SCENE]


@pytest.mark.samples
def test_scenes_runs_keep_finished_scenes_in_splits(scannet_dir, tmp_path, capsys):
    # Two runs with --scenes: the second must not drop the first run's scene from splits/train.txt.
    raw, _ = _broken_tree(scannet_dir, tmp_path)  # scene0000_00 and an intact copy as scene0001_00
    out = tmp_path / "out"
    args = ("--workers", "1", "--no-progress", "--scenes")
    assert _run_tool(raw, tmp_path / "meta", out, *args, SCENE) == 0
    assert (out / "splits" / "train.txt").read_text().split() == [SCENE]
    assert _run_tool(raw, tmp_path / "meta", out, *args, "scene0001_00") == 0
    assert "1 converted" in capsys.readouterr().out
    # in the order of the official split file (scene0001_00 comes first there)
    assert (out / "splits" / "train.txt").read_text().split() == ["scene0001_00", SCENE]
    assert (out / "splits" / "val.txt").read_text() == ""
    # a scene whose output is gone (not finished on disk) is not listed
    (out / "scans" / "scene0001_00" / "meta.json").unlink()
    assert _run_tool(raw, tmp_path / "meta", out, *args, SCENE) == 0
    assert (out / "splits" / "train.txt").read_text().split() == [SCENE]


def test_reader_errors_name_the_file(tmp_path):
    bad = tmp_path / "x.ply"
    bad.write_bytes(b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nend_header\n0\n")
    from pc3d.data.scannet.raw import read_ply_mesh

    with pytest.raises(RawSceneError, match="x.ply.*binary_little_endian"):
        read_ply_mesh(bad)
    js = tmp_path / "s.json"
    js.write_text("{not json")
    with pytest.raises(RawSceneError, match="s.json: invalid JSON"):
        read_segs(js)
    with pytest.raises(RawSceneError, match="missing.json: file not found"):
        read_aggregation(tmp_path / "missing.json")
    tsv = tmp_path / "l.tsv"
    tsv.write_text("a\tb\n1\t2\n")
    with pytest.raises(RawSceneError, match="raw_category"):
        read_label_tsv(tsv)
