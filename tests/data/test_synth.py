"""Synthetic ScanNet rooms and KITTI frames: raw-format round trips (with independent minimal parsers),
determinism, geometry/label consistency and statistics against the real samples in $PC3D_SAMPLES."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
import pytest

from pc3d.data.synth import kitti_calib as KC
from pc3d.data.synth.kitti_street import generate_frame, write_frame
from pc3d.data.synth.lidar import HDL64
from pc3d.data.synth.ply import encode_ply_mesh
from pc3d.data.synth.scannet_rooms import generate_room
from pc3d.tools import data_cli, data_synth

# ScanNet per-class mean box sizes (VoteNet / mmdet3d ``scannet_means``), 18 detection classes by raw name.
SCANNET_MEAN_SIZE = {
    "cabinet": (0.770, 0.812, 0.926), "kitchen cabinet": (0.770, 0.812, 0.926), "bed": (1.877, 1.843, 1.193),
    "chair": (0.613, 0.615, 0.718), "office chair": (0.613, 0.615, 0.718), "couch": (1.396, 1.512, 0.834),
    "table": (0.979, 1.068, 0.633), "coffee table": (0.979, 1.068, 0.633), "door": (0.532, 0.596, 1.750),
    "window": (0.962, 0.725, 1.148), "bookshelf": (0.832, 1.049, 1.688), "picture": (0.211, 0.421, 0.537),
    "counter": (1.444, 1.897, 0.270), "desk": (1.029, 1.404, 0.876), "curtain": (1.377, 0.655, 1.681),
    "refrigerator": (0.665, 0.711, 1.299), "shower curtain": (0.420, 0.379, 1.751), "toilet": (0.594, 0.591, 0.739),
    "sink": (0.509, 0.507, 0.301), "bathtub": (1.151, 1.055, 0.497), "trash can": (0.475, 0.492, 0.580),
}  # fmt: skip


# ------------------------------------------------------------------------------ independent parsers
def read_ply(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Minimal binary-little-endian PLY reader: header lines, vertex record array, faces (F, 3)."""
    data = path.read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:end].decode("ascii").splitlines()
    assert header[0] == "ply" and header[1] == "format binary_little_endian 1.0"
    types = {"float": "<f4", "uchar": "u1", "ushort": "<u2", "int": "<i4"}
    props, nv, nf, elem = [], 0, 0, None
    for line in header:
        t = line.split()
        if t[0] == "element":
            elem = t[1]
            if elem == "vertex":
                nv = int(t[2])
            else:
                nf = int(t[2])
        elif t[0] == "property" and elem == "vertex":
            props.append((t[2], types[t[1]]))
        elif t[0] == "property" and elem == "face":
            assert t[1:] == ["list", "uchar", "int", "vertex_indices"]
    vdt = np.dtype(props)
    verts = np.frombuffer(data, vdt, nv, end)
    raw = np.frombuffer(data, np.uint8, nf * 13, end + nv * vdt.itemsize).reshape(nf, 13)
    assert len(data) == end + nv * vdt.itemsize + nf * 13, "trailing bytes after the faces"
    assert np.all(raw[:, 0] == 3)
    faces = raw[:, 1:].copy().view("<i4").reshape(nf, 3)
    return header, verts, faces


def read_axis_alignment(path: Path) -> np.ndarray:
    for line in path.read_text().splitlines():
        k, _, v = line.partition("=")
        if k.strip() == "axisAlignment":
            return np.array([float(x) for x in v.split()]).reshape(4, 4)
    raise AssertionError("no axisAlignment line")


def read_kitti_calib(path: Path) -> dict[str, np.ndarray]:
    out = {}
    for line in path.read_text().splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            out[k] = np.array([float(x) for x in v.split()])
    return out


def label_boxes_to_lidar(lines: list[str], calib: dict[str, np.ndarray]) -> tuple[list[str], np.ndarray]:
    """KITTI label rows -> LiDAR boxes [x, y, z (centre), l, w, h, heading] (OpenPCDet convention)."""
    r0 = np.eye(4)
    r0[:3, :3] = calib["R0_rect"].reshape(3, 3)
    tr = np.eye(4)
    tr[:3] = calib["Tr_velo_to_cam"].reshape(3, 4)
    inv = np.linalg.inv(r0 @ tr)
    names, boxes = [], []
    for line in lines:
        t = line.split()
        assert len(t) == 15, line
        if t[0] == "DontCare":
            continue
        h, w, l, x, y, z, ry = map(float, t[8:15])
        c = inv @ np.array([x, y, z, 1.0])
        names.append(t[0])
        boxes.append([c[0], c[1], c[2] + h / 2, l, w, h, -(ry + np.pi / 2)])
    return names, np.array(boxes).reshape(-1, 7)


def points_in_box(p: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = p[:, :3] - b[:3]
    c, s = np.cos(-b[6]), np.sin(-b[6])
    x = d[:, 0] * c - d[:, 1] * s
    y = d[:, 0] * s + d[:, 1] * c
    return (np.abs(x) <= b[3] / 2) & (np.abs(y) <= b[4] / 2) & (np.abs(d[:, 2]) <= b[5] / 2)


def decode_png(data: bytes) -> np.ndarray:
    """Decode an 8-bit RGB PNG (checked with Pillow's verifier first)."""
    from PIL import Image

    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    Image.open(io.BytesIO(data)).verify()
    img = Image.open(io.BytesIO(data))
    assert img.mode == "RGB"
    return np.asarray(img)


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    data_synth.add_arguments(p)
    return p.parse_args(argv)


# ----------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def scannet_out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth_scannet")
    args = _parse(
        ["scannet", "--out", str(out), "--scenes", "2", "--seed", "7", "--workers", "1", "--no-progress"]
    )
    assert data_synth.run(args) == 0
    return out


@pytest.fixture(scope="module")
def kitti_frames() -> list:
    return [generate_frame(i, 11, render_image=i == 0) for i in range(3)]


@pytest.fixture(scope="module")
def kitti_out(tmp_path_factory, kitti_frames) -> Path:
    out = tmp_path_factory.mktemp("synth_kitti") / "training"
    for f in kitti_frames:
        write_frame(f, out)
    return out


# -------------------------------------------------------------------------------------------- ScanNet
def test_scannet_layout_and_ply_round_trip(scannet_out: Path, samples_dir: Path):
    scans = scannet_out / "scans"
    assert sorted(p.name for p in scans.iterdir()) == ["scene0000_00", "scene0001_00"]
    real_header, _, _ = read_ply(samples_dir / "scannet/scans/scene0000_00/scene0000_00_vh_clean_2.ply")
    real_lheader, _, _ = read_ply(
        samples_dir / "scannet/scans/scene0000_00/scene0000_00_vh_clean_2.labels.ply"
    )
    room = generate_room(0, 7)
    sid = "scene0000_00"
    d = scans / sid
    header, verts, faces = read_ply(d / f"{sid}_vh_clean_2.ply")
    # same header structure as the real file, apart from the element counts
    strip = [lambda h: [x if not x.startswith("element") else x.rsplit(" ", 1)[0] for x in h]][0]
    assert strip(header) == strip(real_header)
    lheader, lverts, lfaces = read_ply(d / f"{sid}_vh_clean_2.labels.ply")
    assert strip(lheader) == strip(real_lheader)
    xyz = np.stack([verts["x"], verts["y"], verts["z"]], 1)
    np.testing.assert_array_equal(xyz, room.xyz)
    np.testing.assert_array_equal(
        np.stack([verts[c] for c in ("red", "green", "blue", "alpha")], 1), room.rgba
    )
    np.testing.assert_array_equal(faces, room.faces)
    np.testing.assert_array_equal(lfaces, faces)
    assert np.all(verts["alpha"] == 255)
    assert faces.min() >= 0 and faces.max() < len(verts)
    # every vertex is used by a face (the mesh has no loose points)
    assert np.unique(faces).size == len(verts)

    segs = json.loads((d / f"{sid}_vh_clean_2.0.010000.segs.json").read_bytes())
    seg = np.array(segs["segIndices"])
    assert segs["sceneId"] == sid and len(seg) == len(verts)
    assert np.all(seg[np.unique(seg)] == np.unique(seg)), "a segment id is one of its own vertices"
    agg = json.loads((d / f"{sid}.aggregation.json").read_bytes())
    assert agg["segmentsFile"] == f"{sid}_vh_clean_2.0.010000.segs.json"
    groups = agg["segGroups"]
    assert [g["id"] for g in groups] == list(range(len(groups)))
    assert [g["objectId"] for g in groups] == list(range(len(groups)))
    seen = set()
    for g in groups:
        assert set(g["segments"]) <= set(seg.tolist()) and not seen & set(g["segments"])
        seen |= set(g["segments"])
    # labels.ply carries the ScanNet id of each annotated vertex, 0 elsewhere
    tsv = {
        r.split("\t")[1]: r.split("\t")
        for r in (scannet_out / "meta/scannetv2-labels.combined.tsv").read_text().splitlines()[1:]
    }
    expect = np.zeros(len(verts), np.int64)
    for g in groups:
        expect[np.isin(seg, g["segments"])] = int(tsv[g["label"]][0])
    np.testing.assert_array_equal(lverts["label"], expect)


def test_scannet_meta_matches_real_label_table(scannet_out: Path, samples_dir: Path):
    real = (samples_dir / "scannet/meta/scannetv2-labels.combined.tsv").read_text().splitlines()
    real_rows = {r.split("\t")[1]: r for r in real[1:]}
    ours = (scannet_out / "meta/scannetv2-labels.combined.tsv").read_text().splitlines()
    assert ours[0] == real[0]
    assert len(ours) > 25
    for row in ours[1:]:
        raw = row.split("\t")[1]
        assert raw in real_rows, f"{raw!r} is not a raw_category of the real table"
        assert row == real_rows[raw], f"row of {raw!r} differs from the real table"
    # every aggregation label is a row of the written table
    names = {r.split("\t")[1] for r in ours[1:]}
    for agg in (scannet_out / "scans").glob("*/*.aggregation.json"):
        assert {g["label"] for g in json.loads(agg.read_bytes())["segGroups"]} <= names
    train = (scannet_out / "meta/scannetv2_train.txt").read_text().split()
    val = (scannet_out / "meta/scannetv2_val.txt").read_text().split()
    assert sorted(train + val) == ["scene0000_00", "scene0001_00"] and len(val) == 1
    assert (scannet_out / "meta/scannetv2_test.txt").read_text() == ""


def test_scannet_alignment_instances_and_boxes(scannet_out: Path):
    for sid in ("scene0000_00", "scene0001_00"):
        d = scannet_out / "scans" / sid
        _, verts, _ = read_ply(d / f"{sid}_vh_clean_2.ply")
        xyz = np.stack([verts["x"], verts["y"], verts["z"]], 1).astype(np.float64)
        m = read_axis_alignment(d / f"{sid}.txt")
        angle = np.degrees(np.arctan2(m[1, 0], m[0, 0]))
        assert abs(((angle + 45) % 90) - 45) > 0.5, "the raw scan should not be axis-aligned"
        al = xyz @ m[:3, :3].T + m[:3, 3]
        seg = np.array(json.loads((d / f"{sid}_vh_clean_2.0.010000.segs.json").read_bytes())["segIndices"])
        groups = json.loads((d / f"{sid}.aggregation.json").read_bytes())["segGroups"]
        room = generate_room(int(sid[5:9]), 7)
        assert len(room.boxes_aligned) == len(groups)
        floor = next(g for g in groups if g["label"] == "floor")
        fz = al[np.isin(seg, floor["segments"]), 2]
        assert abs(np.median(fz)) < 0.01 and fz.std() < 0.01, "aligned floor is the plane z = 0"
        for wall in (g for g in groups if g["label"] == "wall"):
            w = al[np.isin(seg, wall["segments"])]
            assert min(w[:, 0].std(), w[:, 1].std()) < 0.01, "aligned walls are axis-parallel planes"
        for g, box in zip(groups, room.boxes_aligned):
            pts = al[np.isin(seg, g["segments"])]
            assert len(pts) > 0
            lo, hi = pts.min(0), pts.max(0)
            assert np.all(lo >= box[:3] - 0.02) and np.all(hi <= box[3:] + 0.02), g["label"]
            if g["label"] in SCANNET_MEAN_SIZE and g["label"] not in ("counter", "door", "window", "picture"):
                mean = np.array(SCANNET_MEAN_SIZE[g["label"]])
                size = box[3:] - box[:3]
                assert mean[2] / 2.5 < size[2] < mean[2] * 2.5, (g["label"], size, mean)
                assert max(mean[:2]) / 2.5 < max(size[:2]) < max(mean[:2]) * 2.5, (g["label"], size, mean)


def test_scannet_layouts_do_not_overlap():
    big = {
        "bed",
        "cabinet",
        "bookshelf",
        "desk",
        "couch",
        "refrigerator",
        "toilet",
        "bathtub",
        "dresser",
        "table",
    }
    classes = set()
    for i in range(6):
        room = generate_room(i, 3)
        labels = [g[0] for g in room.groups]
        classes |= set(labels)
        idx = [k for k, lb in enumerate(labels) if lb in big]
        for a in idx:
            for b in idx:
                if a < b:
                    lo = np.maximum(room.boxes_aligned[a, :3], room.boxes_aligned[b, :3])
                    hi = np.minimum(room.boxes_aligned[a, 3:], room.boxes_aligned[b, 3:])
                    inter = np.prod(np.clip(hi - lo, 0, None))
                    assert inter < 1e-3, (i, labels[a], labels[b])
    nyu20 = {"wall", "floor", "cabinet", "kitchen cabinet", "bed", "chair", "office chair", "couch", "table",
             "coffee table", "door", "window", "bookshelf", "picture", "counter", "desk", "curtain", "refrigerator",
             "shower curtain", "toilet", "sink", "bathtub", "trash can"}  # fmt: skip
    assert {"wall", "floor", "door"} <= classes
    assert len(classes & nyu20) >= 12


def test_scannet_statistics_against_real_scene(samples_dir: Path):
    d = samples_dir / "scannet/scans/scene0000_00"
    _, rverts, rfaces = read_ply(d / "scene0000_00_vh_clean_2.ply")
    rseg = np.array(json.loads((d / "scene0000_00_vh_clean_2.0.010000.segs.json").read_bytes())["segIndices"])
    ragg = json.loads((d / "scene0000_00.aggregation.json").read_bytes())["segGroups"]
    rlab = np.isin(rseg, [s for g in ragg for s in g["segments"]]).mean()
    rxyz = np.stack([rverts["x"], rverts["y"], rverts["z"]], 1).astype(np.float64)

    def density(xyz, faces):
        t = xyz[faces]
        area = 0.5 * np.linalg.norm(np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]), axis=1).sum()
        return len(xyz) / area

    rooms = [generate_room(i, 5) for i in range(3)]
    nv = np.array([len(r.xyz) for r in rooms])
    assert np.all(nv > 20000), "tens of thousands of vertices per room"
    assert len(rverts) / 4 < np.median(nv) < len(rverts) * 2
    lab = np.mean([(r.instance >= 0).mean() for r in rooms])
    assert abs(lab - rlab) < 0.2, (lab, rlab)
    dens = np.median([density(r.xyz.astype(np.float64), r.faces) for r in rooms])
    assert density(rxyz, rfaces) / 2 < dens < density(rxyz, rfaces) * 2
    # colours: mean brightness in the range of a real scan
    rmean = np.mean([rverts["red"], rverts["green"], rverts["blue"]])
    smean = np.mean([r.rgba[:, :3].mean() for r in rooms])
    assert rmean * 0.6 < smean < rmean * 1.6


def test_scannet_determinism_and_bad_input():
    a, b, c = generate_room(3, 1), generate_room(3, 1), generate_room(3, 2)
    ba = encode_ply_mesh(a.xyz, a.rgba, a.faces)
    assert ba == encode_ply_mesh(b.xyz, b.rgba, b.faces)
    assert ba != encode_ply_mesh(c.xyz, c.rgba, c.faces)
    assert a.groups == b.groups
    with pytest.raises(ValueError, match="spacing"):
        generate_room(0, 0, spacing=0.0)
    with pytest.raises(SystemExit):
        _parse(["scannet", "--out", "x", "--scenes", "0"])
    assert data_synth.run(_parse(["scannet", "--out", "x", "--spacing", "0.001"])) == 2
    assert data_synth.run(_parse(["kitti", "--out", __file__, "--frames", "1"])) == 2
    with pytest.raises(ValueError, match="faces"):
        encode_ply_mesh(np.zeros((3, 3)), np.zeros((3, 4), np.uint8), np.array([[0, 1, 3]]))


def test_scannet_workers_give_identical_bytes(tmp_path: Path):
    outs = []
    for w in ("1", "2"):
        out = tmp_path / f"w{w}"
        assert data_synth.run(_parse(["scannet", "--out", str(out), "--scenes", "2", "--seed", "4", "--workers", w,
                                      "--no-progress", "--spacing", "0.09"])) == 0  # fmt: skip
        outs.append(out)
    files = sorted(p.relative_to(outs[0]) for p in outs[0].rglob("*") if p.is_file())
    assert len(files) == 2 * 5 + 4 + 1  # 5 files per room, 4 meta files, the output marker
    for f in files:
        assert (outs[0] / f).read_bytes() == (outs[1] / f).read_bytes(), f
    assert not list(outs[0].rglob(".*tmp*")), "temporary files left behind"


# ---------------------------------------------------------------------------------------------- KITTI
def test_kitti_files_round_trip(kitti_out: Path, kitti_frames, samples_dir: Path):
    real_calib = (samples_dir / "kitti/training/calib/000001.txt").read_bytes()
    for f in kitti_frames:
        fid = f.frame_id
        assert (kitti_out / "calib" / f"{fid}.txt").read_bytes() == real_calib
        pts = np.fromfile(kitti_out / "velodyne" / f"{fid}.bin", "<f4").reshape(-1, 4)
        np.testing.assert_array_equal(pts, f.points)
        assert pts[:, 3].min() >= 0 and pts[:, 3].max() <= 0.99
        lines = (kitti_out / "label_2" / f"{fid}.txt").read_text().splitlines()
        assert len(lines) == len(f.labels)
        for line in lines:
            t = line.split()
            assert len(t) == 15 and t[0] in {"Car", "Van", "Pedestrian", "Cyclist", "DontCare"}
            if t[0] == "DontCare":
                assert t[1:4] == ["-1", "-1", "-10"] and t[8:] == [
                    "-1",
                    "-1",
                    "-1",
                    "-1000",
                    "-1000",
                    "-1000",
                    "-10",
                ]
                continue
            trunc, occ = float(t[1]), int(t[2])
            assert 0 <= trunc <= 1 and occ in (0, 1, 2, 3)
            x1, y1, x2, y2 = map(float, t[4:8])
            assert 0 <= x1 < x2 <= KC.IMAGE_WIDTH and 0 <= y1 < y2 <= KC.IMAGE_HEIGHT
            assert -np.pi <= float(t[3]) <= np.pi and -np.pi <= float(t[14]) <= np.pi
    img = decode_png((kitti_out / "image_2" / f"{kitti_frames[0].frame_id}.png").read_bytes())
    assert img.shape == (375, 1242, 3)
    np.testing.assert_array_equal(img, kitti_frames[0].image)
    assert img.std() > 20, "the rendered image has content"


def test_kitti_boxes_contain_their_points_and_project(kitti_out: Path, kitti_frames):
    calib = read_kitti_calib(kitti_out / "calib" / "000000.txt")
    p2 = calib["P2"].reshape(3, 4)
    r0 = np.eye(4)
    r0[:3, :3] = calib["R0_rect"].reshape(3, 3)
    checked = 0
    for f in kitti_frames:
        lines = (kitti_out / "label_2" / f"{f.frame_id}.txt").read_text().splitlines()
        _, boxes = label_boxes_to_lidar(lines, calib)
        labelled = [lb for lb in f.labels if lb.cls != "DontCare"]
        assert len(boxes) == len(labelled)
        for lb, box, line in zip(labelled, boxes, [x for x in lines if not x.startswith("DontCare")]):
            np.testing.assert_allclose(box[:6], lb.box_lidar[:6], atol=0.02)
            own = f.points[f.point_object == lb.agent]
            if len(own) >= 5:
                inside = points_in_box(own, box).mean()
                assert inside >= 0.95, (f.frame_id, lb.cls, inside, len(own))
                checked += 1
            # 2D box = projection of the 3D box corners (fully visible objects)
            t = line.split()
            if float(t[1]) == 0.0:
                h, w, l, x, y, z, ry = map(float, t[8:15])
                cx = np.array([1, 1, -1, -1, 1, 1, -1, -1]) * l / 2
                cz = np.array([1, -1, -1, 1, 1, -1, -1, 1]) * w / 2
                cy = np.array([0, 0, 0, 0, -h, -h, -h, -h])
                c, s = np.cos(ry), np.sin(ry)
                corners = np.stack([c * cx + s * cz + x, cy + y, -s * cx + c * cz + z], 1)
                uvw = np.concatenate([corners, np.ones((8, 1))], 1) @ p2.T
                uv = uvw[:, :2] / uvw[:, 2:]
                np.testing.assert_allclose(list(map(float, t[4:8])), [*uv.min(0), *uv.max(0)], atol=0.01)
    assert checked >= 5


def test_kitti_statistics_against_real_frames(kitti_frames, samples_dir: Path):
    real = [
        np.fromfile(samples_dir / f"kitti/training/velodyne/00000{i}.bin", "<f4").reshape(-1, 4)
        for i in (1, 2)
    ]
    n_real = np.mean([len(r) for r in real])
    ground_real = [(r[:, 2] < -1.4).mean() for r in real]
    for f in kitti_frames:
        assert n_real / 2 < len(f.points) < n_real * 2
        g = (f.points[:, 2] < -1.4).mean()
        assert min(ground_real) - 0.15 < g < max(ground_real) + 0.15, g
        assert np.median(real[0][:, 3]) / 2 < np.median(f.points[:, 3]) < np.median(real[0][:, 3]) * 2
    # points on a car: real sample 000002 has a car at 34.8 m seen from behind with 67 points; LiDAR
    # density falls with range squared, so n * d^2 should agree within a small factor at 10-20 m.
    calib = read_kitti_calib(samples_dir / "kitti/training/calib/000002.txt")
    lines = (samples_dir / "kitti/training/label_2/000002.txt").read_text().splitlines()
    names, boxes = label_boxes_to_lidar(lines, calib)
    car = boxes[names.index("Car")]
    ref = points_in_box(real[1], car).sum() * np.hypot(*car[:2]) ** 2
    ratios = []
    for f in kitti_frames:
        for lb in f.labels:
            d = np.hypot(*lb.box_lidar[:2])
            if lb.cls == "Car" and 10 <= d <= 20 and lb.occluded == 0:
                ratios.append(lb.num_points * d**2 / ref)
    assert ratios, "no unoccluded car at 10-20 m in the test frames"
    assert 0.3 < np.median(ratios) < 5.0, ratios


def test_kitti_labels_cover_classes_and_dontcare():
    frames = [generate_frame(i, 2, lidar=HDL64(azimuth_steps=500), render_image=False) for i in range(6)]
    classes = {lb.cls for f in frames for lb in f.labels}
    assert {"Car", "Pedestrian"} <= classes and len(classes) >= 4
    for f in frames:
        for lb in f.labels:
            d = np.hypot(*lb.box_lidar[:2])
            if lb.cls != "DontCare":
                assert d <= 70.0 and lb.num_points > 0 and lb.bbox[3] - lb.bbox[1] >= 15
            loc_velo = KC.rect_to_velo(lb.loc[None])[0] if lb.cls != "DontCare" else None
            if loc_velo is not None:
                np.testing.assert_allclose(loc_velo[:2], lb.box_lidar[:2], atol=0.01)


def test_kitti_determinism(tmp_path: Path):
    lid = HDL64(azimuth_steps=400)
    a, b = (
        generate_frame(5, 3, lidar=lid, render_image=False),
        generate_frame(5, 3, lidar=lid, render_image=False),
    )
    np.testing.assert_array_equal(a.points, b.points)
    assert [x.line() for x in a.labels] == [x.line() for x in b.labels]
    c = generate_frame(5, 4, lidar=lid, render_image=False)
    assert len(c.points) != len(a.points) or not np.array_equal(c.points, a.points)
    args = _parse(["kitti", "--out", str(tmp_path), "--frames", "2", "--seed", "0", "--workers", "1",
                   "--azimuth-steps", "300", "--no-image", "--no-progress"])  # fmt: skip
    assert data_synth.run(args) == 0
    for sub, ext in (("velodyne", "bin"), ("calib", "txt"), ("label_2", "txt"), ("image_2", "png")):
        assert sorted(p.name for p in (tmp_path / "training" / sub).iterdir()) == [
            f"00000{i}.{ext}" for i in (0, 1)
        ]
    assert (tmp_path / "ImageSets/train.txt").read_text() == "000000\n"
    assert (tmp_path / "ImageSets/val.txt").read_text() == "000001\n"


def test_mesh_primitives_are_closed_with_outward_faces():
    from pc3d.data.synth import meshes as M

    def signed_volume(m: M.Mesh) -> float:
        t = m.vertices[m.faces]
        return float(np.einsum("ij,ij->i", t[:, 0], np.cross(t[:, 1], t[:, 2])).sum() / 6.0)

    assert signed_volume(M.box((0, 0, 0), (1.0, 2.0, 0.5), 0.1)) == pytest.approx(1.0)
    assert signed_volume(
        M.coarse_boxes(np.zeros((2, 3)), np.array([[1.0, 2.0, 0.5], [1.0, 1.0, 1.0]]))
    ) == pytest.approx(2.0)
    cyl = M.cylinder(0.5, 2.0, 0.05, top=True, bottom=True)
    assert signed_volume(cyl) == pytest.approx(np.pi * 0.25 * 2.0, rel=0.01)
    c = np.array(
        [[0, 0, 0], [2, 0, 0], [2, 1, 0], [0, 1, 0], [0.5, 0, 1], [1.5, 0, 1], [1.5, 1, 1], [0.5, 1, 1]],
        float,
    )
    for sp in (0.1, 10.0):
        assert signed_volume(M.hexahedron(c, sp)) == pytest.approx(1.5)
    assert signed_volume(M.icosphere(1.0, 3)) == pytest.approx(4 / 3 * np.pi, rel=0.02)
    with pytest.raises(ValueError, match="hi must exceed lo"):
        M.box((0, 0, 0), (1, 0, 1), 0.1)


def test_dataset_converters_accept_synthetic_data(scannet_out: Path, kitti_out: Path, tmp_path: Path):
    """``pc3d-data scannet`` and ``pc3d-data kitti`` convert the output with no error."""
    sn = tmp_path / "scannet"
    argv = [
        "scannet",
        "--raw",
        str(scannet_out / "scans"),
        "--meta",
        str(scannet_out / "meta"),
        "--out",
        str(sn),
    ]
    assert data_cli.main([*argv, "--workers", "1", "--no-progress"]) == 0
    meta = json.loads((sn / "scans" / "scene0000_00" / "meta.json").read_text())
    assert meta["unknown_category_points"] == 0 and meta["num_boxes"] > 5
    kt = tmp_path / "kitti"
    (kitti_out.parent / "ImageSets").mkdir(exist_ok=True)
    (kitti_out.parent / "ImageSets" / "train.txt").write_text("000000\n000001\n")
    (kitti_out.parent / "ImageSets" / "val.txt").write_text("000002\n")
    argv = ["kitti", "--root", str(kitti_out.parent), "--out", str(kt), "--workers", "0", "--no-progress"]
    assert data_cli.main(argv) == 0
    assert json.loads((kt / "errors.json").read_text()) == {}
