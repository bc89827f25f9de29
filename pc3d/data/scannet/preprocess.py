"""Convert one raw ScanNet v2 scan into the pc3d on-disk format (see ``docs/data/scannet.md``).

Conventions follow the peers exactly where they agree:

- ``segment20`` / ``segment200`` / ``instance`` as Pointcept's ``preprocess_scannet.py``: every
  ``segGroup`` (file order) paints its segments' vertices; later groups overwrite earlier ones;
  ``instance`` is the group's 0-based ``id`` for every group, whatever its class; ``-1`` elsewhere.
- detection boxes as mmdetection3d's ``load_scannet_data.py``: vertices aligned with
  ``axisAlignment`` (``[p, 1] @ M.T``), one axis-aligned box per instance from the min/max of the
  vertices that carry that instance, kept when its class is one of the 18 detection classes,
  ordered by ``objectId``. The class is taken from the group's raw category (mmdetection3d reads it
  at the instance's first vertex, which is the same unless a segment is shared by two groups).
- raw categories missing from the label tsv become ignore (``-1``) and are counted in ``meta.json``
  (mmdetection3d would raise ``KeyError`` here; Pointcept silently ignores them).
- normals: area-weighted vertex normals (sum of the unnormalised face cross products of the faces
  around a vertex, normalised), as Pointcept computes them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from pc3d.data.scannet.classes import (
    IGNORE_INDEX,
    SCANNET_DET_CLASSES,
    nyu40_to_det_class,
    nyu40_to_segment20,
    tsv_id_to_segment200,
)
from pc3d.data.scannet.raw import (
    LabelTable,
    RawSceneError,
    check_group_segments,
    read_aggregation,
    read_axis_alignment,
    read_ply_mesh,
    read_segs,
)
from pc3d.data.transforms.base import affine
from pc3d.io import bytes_record, npy_bytes, publish_dir, verify_files

FORMAT_VERSION = 1
SCENE_ARRAYS = (
    "coord", "color", "normal", "segment20", "segment200", "instance", "axis_align", "boxes", "box_labels",
)  # fmt: skip


def raw_scene_files(scene_dir: str | Path) -> dict[str, Path]:
    """Paths of the raw files of the scan in ``scene_dir`` (named after the folder)."""
    scene_dir = Path(scene_dir)
    sid = scene_dir.name
    return {
        "mesh": scene_dir / f"{sid}_vh_clean_2.ply",
        "segs": scene_dir / f"{sid}_vh_clean_2.0.010000.segs.json",
        "aggregation": scene_dir / f"{sid}.aggregation.json",
        "txt": scene_dir / f"{sid}.txt",
    }


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals ``(V, 3)`` float32 from ``vertices (V, 3)`` and ``faces (F, 3)``.

    A vertex on no face (or only on degenerate faces) gets ``(0, 0, 1)``.
    """
    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64)
    n_v = v.shape[0]
    face_n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])  # |.| = 2 * area
    idx = f.ravel()
    out = np.empty((n_v, 3), dtype=np.float64)
    for k in range(3):
        out[:, k] = np.bincount(idx, weights=np.repeat(face_n[:, k], 3), minlength=n_v)
    length = np.linalg.norm(out, axis=1)
    bad = length < 1e-12
    out[bad] = (0.0, 0.0, 1.0)
    length[bad] = 1.0
    return (out / length[:, None]).astype(np.float32)


def align_points(coord: np.ndarray, axis_align: np.ndarray) -> np.ndarray:
    """Apply a 4x4 alignment: ``[p, 1] @ M.T`` for ``coord (N, 3)``; returns float32 ``(N, 3)``."""
    m = np.asarray(axis_align, dtype=np.float64)
    return affine(np.asarray(coord, dtype=np.float32), m[:3, :3], None, m[:3, 3])


def instance_boxes(
    aligned: np.ndarray, instance: np.ndarray, group_ids: list[int], group_det: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned boxes ``(K, 7)`` ``[cx, cy, cz, dx, dy, dz, 0]`` and labels ``(K,)`` in group order.

    ``group_det[i]`` is the detection class of group ``group_ids[i]`` (-1: not a detection class);
    groups without a detection class or without any vertex are skipped.
    """
    boxes, labels = [], []
    if len(group_ids) == 0:
        return np.zeros((0, 7), np.float32), np.zeros((0,), np.int64)
    order = np.argsort(instance, kind="stable")
    sorted_inst = instance[order]
    for gid, det in zip(group_ids, group_det):
        if det < 0:
            continue
        lo, hi = np.searchsorted(sorted_inst, [gid, gid + 1])
        if hi <= lo:
            continue
        pts = aligned[order[lo:hi]]
        mn, mx = pts.min(0), pts.max(0)
        boxes.append(np.concatenate([(mn + mx) / 2.0, mx - mn, [0.0]]))
        labels.append(det)
    if not boxes:
        return np.zeros((0, 7), np.float32), np.zeros((0,), np.int64)
    return np.asarray(boxes, dtype=np.float32), np.asarray(labels, dtype=np.int64)


def convert_scene(scene_dir: str | Path, labels: LabelTable, *, with_labels: bool = True) -> dict[str, Any]:
    """Read one raw scan and return ``{"arrays": {name: ndarray}, "meta": dict}`` (nothing written).

    ``with_labels=False`` (test scans) needs only the mesh and ``<scene>.txt``: labels are all
    ``-1`` and there are no boxes. Raises :class:`RawSceneError` naming the offending file.
    """
    files = raw_scene_files(scene_dir)
    sid = Path(scene_dir).name
    mesh = read_ply_mesh(files["mesh"])
    n = mesh.num_vertices
    for key in ("red", "green", "blue"):
        if key not in mesh.vertex:
            raise RawSceneError(files["mesh"], f"vertex element has no property {key!r}")
    coord = np.stack([mesh.vertex["x"], mesh.vertex["y"], mesh.vertex["z"]], axis=1).astype(np.float32)
    color = np.stack([mesh.vertex["red"], mesh.vertex["green"], mesh.vertex["blue"]], axis=1).astype(np.uint8)
    normal = vertex_normals(coord, mesh.faces)
    axis_align = read_axis_alignment(files["txt"]) if files["txt"].exists() else None
    if axis_align is None and with_labels:
        if not files["txt"].exists():
            raise RawSceneError(files["txt"], "file not found (needed for axisAlignment)")
        raise RawSceneError(files["txt"], "no 'axisAlignment' line (only test scans may omit it)")
    if axis_align is None:
        axis_align = np.eye(4)

    segment20 = np.full(n, IGNORE_INDEX, dtype=np.int16)
    segment200 = np.full(n, IGNORE_INDEX, dtype=np.int16)
    instance = np.full(n, IGNORE_INDEX, dtype=np.int32)
    boxes = np.zeros((0, 7), np.float32)
    box_labels = np.zeros((0,), np.int64)
    unknown: dict[str, int] = {}
    unknown_points = 0
    num_groups = 0
    if with_labels:
        seg = read_segs(files["segs"], n)
        groups = read_aggregation(files["aggregation"])
        check_group_segments(groups, seg, files["aggregation"], files["segs"])
        num_groups = len(groups)
        seg_max = int(seg.max()) + 1 if seg.size else 0
        nyu = np.array([labels.raw_to_nyu40.get(g.label, 0) for g in groups], dtype=np.int64)
        tsv_id = np.array([labels.raw_to_id.get(g.label, 0) for g in groups], dtype=np.int64)
        for g in groups:
            if g.label not in labels.raw_to_nyu40:
                unknown[g.label] = unknown.get(g.label, 0) + 1
        # segment id -> last group (file order) that claims it; later groups overwrite earlier ones
        owner = np.full(seg_max, -1, dtype=np.int64)
        for gi, g in enumerate(groups):
            owner[g.segments] = gi
        vg = owner[seg] if seg_max else np.full(n, -1, np.int64)
        has = vg >= 0
        gids = np.array([g.id for g in groups], dtype=np.int64)
        segment20[has] = nyu40_to_segment20(nyu)[vg[has]]
        segment200[has] = tsv_id_to_segment200(tsv_id)[vg[has]]
        instance[has] = gids[vg[has]]
        unknown_mask = np.array([g.label not in labels.raw_to_nyu40 for g in groups], dtype=bool)
        unknown_points = int(unknown_mask[vg[has]].sum()) if len(groups) else 0
        aligned = align_points(coord, axis_align)
        det = nyu40_to_det_class(nyu)
        order = np.argsort([g.object_id for g in groups], kind="stable")
        boxes, box_labels = instance_boxes(
            aligned, instance, [int(gids[i]) for i in order], [int(det[i]) for i in order]
        )

    arrays = {
        "coord": coord,
        "color": color,
        "normal": normal,
        "segment20": segment20,
        "segment200": segment200,
        "instance": instance,
        "axis_align": axis_align.astype(np.float32),
        "boxes": boxes,
        "box_labels": box_labels,
    }
    meta = {
        "format_version": FORMAT_VERSION,
        "scene_id": sid,
        "num_points": n,
        "num_faces": int(mesh.faces.shape[0]),
        "has_labels": bool(with_labels),
        "num_instances": num_groups,
        "num_boxes": int(boxes.shape[0]),
        "unknown_categories": unknown,
        "unknown_category_points": unknown_points,
        "det_classes": list(SCANNET_DET_CLASSES),
    }
    return {"arrays": arrays, "meta": meta}


SCENE_FILES = frozenset([f"{name}.npy" for name in SCENE_ARRAYS] + ["meta.json"])


def is_scene_output(path: str | Path) -> bool:
    """Whether folder ``path`` holds only files :func:`write_scene` writes (so it may replace it)."""
    path = Path(path)
    try:
        entries = list(os.scandir(path))
    except OSError:
        return False
    names = {e.name for e in entries}
    return (
        "meta.json" in names
        and names <= SCENE_FILES
        and all(e.is_file(follow_symlinks=False) for e in entries)
    )


def write_scene(out_scans: str | Path, scene_id: str, arrays: dict[str, np.ndarray], meta: dict) -> Path:
    """Atomically publish the scene folder ``out_scans/scene_id`` (see :func:`pc3d.io.publish_dir`).

    ``meta.json`` gains ``files``: the size and SHA-256 of every ``.npy``, which
    :func:`verify_scene` checks. An existing folder is replaced only when it is a scene folder this
    function wrote (:func:`is_scene_output`); anything else raises ``FileExistsError``.
    """
    blobs = {f"{name}.npy": npy_bytes(arrays[name]) for name in SCENE_ARRAYS}
    meta = {**meta, "files": {name: bytes_record(data) for name, data in blobs.items()}}

    def build(tmp: Path) -> None:
        for name, data in blobs.items():
            (tmp / name).write_bytes(data)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))

    return publish_dir(Path(out_scans) / scene_id, build, replaceable=is_scene_output)


def verify_scene(path: str | Path) -> str | None:
    """``None`` when the scene folder ``path`` is complete and every array matches the size and
    SHA-256 recorded in its ``meta.json``; otherwise a short reason."""
    path = Path(path)
    try:
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        return f"{path / 'meta.json'}: unreadable ({e.__class__.__name__})"
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        return f"{path / 'meta.json'}: not format version {FORMAT_VERSION}"
    return verify_files(path, meta.get("files"), [f"{n}.npy" for n in SCENE_ARRAYS])


_DTYPES = {
    "coord": np.float32, "color": np.uint8, "normal": np.float32, "segment20": np.int16,
    "segment200": np.int16, "instance": np.int32, "axis_align": np.float32, "boxes": np.float32,
    "box_labels": np.int64,
}  # fmt: skip


def load_scene(
    path: str | Path, keys: tuple[str, ...] | None = None, mmap: bool = False
) -> dict[str, np.ndarray]:
    """Load a preprocessed scene folder ``<out>/scans/<scene_id>``.

    Returns ``coord (N,3) f32`` (original frame), ``color (N,3) u8``, ``normal (N,3) f32``,
    ``segment20 (N,) i16``, ``segment200 (N,) i16``, ``instance (N,) i32`` (-1 = ignore),
    ``axis_align (4,4) f32``, ``boxes (K,7) f32`` (aligned frame), ``box_labels (K,) i64``;
    ``keys`` selects a subset. Raises ``ValueError`` naming the file when something is missing or
    has the wrong shape/dtype.
    """
    path = Path(path)
    if not (path / "meta.json").is_file():
        raise ValueError(f"{path}: not a preprocessed ScanNet scene (no meta.json); run `pc3d-data scannet`")
    out: dict[str, np.ndarray] = {}
    for name in keys or SCENE_ARRAYS:
        if name not in _DTYPES:
            raise ValueError(f"load_scene: unknown key {name!r}; expected one of {SCENE_ARRAYS}")
        f = path / f"{name}.npy"
        try:
            arr = np.load(f, mmap_mode="r" if mmap else None, allow_pickle=False)
        except FileNotFoundError:
            raise ValueError(f"{f}: missing") from None
        except ValueError as e:
            raise ValueError(f"{f}: unreadable ({e})") from None
        if arr.dtype != _DTYPES[name]:
            raise ValueError(f"{f}: expected dtype {np.dtype(_DTYPES[name])}, got {arr.dtype}")
        out[name] = arr
    n = None
    for name in ("coord", "color", "normal", "segment20", "segment200", "instance"):
        if name in out:
            if n is None:
                n = out[name].shape[0]
            if out[name].shape[0] != n:
                raise ValueError(f"{path / (name + '.npy')}: has {out[name].shape[0]} rows, expected {n}")
    if "boxes" in out and (out["boxes"].ndim != 2 or out["boxes"].shape[1] != 7):
        raise ValueError(f"{path / 'boxes.npy'}: expected (K, 7), got {out['boxes'].shape}")
    return out


def read_meta(path: str | Path) -> dict:
    """``meta.json`` of a preprocessed scene folder."""
    return json.loads((Path(path) / "meta.json").read_text())
