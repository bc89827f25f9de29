"""Readers for the raw ScanNet v2 files of one scan (no third-party PLY/pandas dependency).

Every reader raises :class:`RawSceneError` (a ``ValueError``) naming the file and what was
expected, so a batch conversion can report the scene and file that failed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

_PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
    "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip


class RawSceneError(ValueError):
    """A raw ScanNet file is missing or malformed; ``path`` names the file."""

    def __init__(self, path: str | Path, message: str):
        self.path = str(path)
        super().__init__(f"{path}: {message}")


@dataclass
class PlyMesh:
    """A triangle mesh: ``vertex`` maps property name -> ``(V,)`` array; ``faces (F, 3)`` int64."""

    vertex: dict[str, np.ndarray]
    faces: np.ndarray

    @property
    def num_vertices(self) -> int:
        return len(next(iter(self.vertex.values())))


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise RawSceneError(path, "file not found") from None
    except OSError as e:
        raise RawSceneError(path, f"cannot read ({e.strerror})") from None


def decode_text(path: Path, data: bytes) -> str:
    """UTF-8 text of ``data`` (a leading BOM is dropped); anything else is an error naming ``path``."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise RawSceneError(path, f"line {line}: not UTF-8 text (byte 0x{data[e.start]:02x})") from None


def _ply_count(path: Path, raw: str, tok: list[str]) -> int:
    if len(tok) != 3:
        raise RawSceneError(path, f"PLY header: expected 'element <name> <count>', got {raw.strip()!r}")
    try:
        count = int(tok[2])
    except ValueError:
        raise RawSceneError(
            path, f"PLY header: element {tok[1]!r} count {tok[2]!r} is not an integer"
        ) from None
    if count < 0:
        raise RawSceneError(path, f"PLY header: element {tok[1]!r} has a negative count {count}")
    return count


def _parse_ply_header(path: Path, data: bytes) -> tuple[str, list[tuple[str, int, list]], int]:
    if len(data) == 0:
        raise RawSceneError(path, "empty file (0 bytes); expected a binary PLY mesh")
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise RawSceneError(path, "not a PLY file (missing 'ply' magic or 'end_header')")
    nl = data.find(b"\n", end)
    if nl < 0:
        raise RawSceneError(path, "truncated PLY header")
    try:
        header = data[:end].decode("ascii")
    except UnicodeDecodeError:
        raise RawSceneError(path, "PLY header: non-ASCII bytes") from None
    fmt = None
    elements: list[tuple[str, int, list]] = []
    for raw in header.splitlines()[1:]:
        tok = raw.split()
        if not tok or tok[0] in ("comment", "obj_info"):
            continue
        if tok[0] == "format":
            fmt = tok[1] if len(tok) > 1 else None
        elif tok[0] == "element":
            elements.append((tok[1] if len(tok) > 1 else "", _ply_count(path, raw, tok), []))
        elif tok[0] == "property":
            if not elements:
                raise RawSceneError(path, f"property before any element: {raw!r}")
            if len(tok) >= 2 and tok[1] == "list":
                if len(tok) != 5 or tok[2] not in _PLY_TYPES or tok[3] not in _PLY_TYPES:
                    raise RawSceneError(path, f"unknown PLY list type in {raw!r}")
                elements[-1][2].append((tok[4], ("list", _PLY_TYPES[tok[2]], _PLY_TYPES[tok[3]])))
            else:
                if len(tok) != 3 or tok[1] not in _PLY_TYPES:
                    raise RawSceneError(path, f"unknown PLY type in {raw!r}")
                elements[-1][2].append((tok[2], _PLY_TYPES[tok[1]]))
        else:
            raise RawSceneError(path, f"PLY header: unexpected line {raw.strip()[:60]!r}")
    if fmt not in ("binary_little_endian", "binary_big_endian"):
        raise RawSceneError(path, f"unsupported PLY format {fmt!r}; expected binary_little_endian")
    return ("<" if fmt == "binary_little_endian" else ">"), elements, nl + 1


def read_ply_mesh(path: str | Path) -> PlyMesh:
    """Read a binary PLY mesh (ScanNet ``_vh_clean_2.ply``) by property name.

    Returns the vertex properties (``x, y, z, red, green, blue, ...``) and triangle faces
    ``(F, 3)`` int64. Raises :class:`RawSceneError` for an empty, truncated, over-long or
    non-triangle file, a malformed header, 0 vertices, or NaN/inf coordinates.
    """
    path = Path(path)
    data = _read_bytes(path)
    endian, elements, pos = _parse_ply_header(path, data)
    vertex: dict[str, np.ndarray] | None = None
    faces: np.ndarray | None = None
    for name, count, props in elements:
        if any(isinstance(t, tuple) for _, t in props):
            if name != "face" or len(props) != 1:
                raise RawSceneError(
                    path, f"element {name!r}: only a single list property 'face' is supported"
                )
            _, (_, ctype, itype) = props[0]
            rec = np.dtype([("n", endian + ctype), ("v", endian + itype, (3,))])
            need = rec.itemsize * count
            if len(data) - pos < need:
                raise RawSceneError(
                    path,
                    f"truncated: element 'face' needs {need} bytes for {count} faces, {len(data) - pos} left",
                )
            arr = np.frombuffer(data, dtype=rec, count=count, offset=pos)
            if count and not bool((arr["n"] == 3).all()):
                raise RawSceneError(path, "faces: expected triangles (vertex count 3 per face)")
            faces = arr["v"].astype(np.int64)
            pos += need
        else:
            rec = np.dtype([(p, endian + t) for p, t in props])
            need = rec.itemsize * count
            if len(data) - pos < need:
                raise RawSceneError(
                    path,
                    f"truncated: element {name!r} needs {need} bytes for {count} rows, {len(data) - pos} left",
                )
            arr = np.frombuffer(data, dtype=rec, count=count, offset=pos)
            pos += need
            if name == "vertex":
                vertex = {p: arr[p] for p, _ in props}
    if vertex is None:
        raise RawSceneError(path, "no 'vertex' element")
    for key in ("x", "y", "z"):
        if key not in vertex:
            raise RawSceneError(path, f"vertex element has no property {key!r}")
    if pos != len(data):
        raise RawSceneError(path, f"{len(data) - pos} unexpected bytes after the last element")
    if faces is None:
        faces = np.zeros((0, 3), dtype=np.int64)
    n = len(vertex["x"])
    if n == 0:
        raise RawSceneError(path, "the mesh has 0 vertices; expected a scanned scene")
    for key in ("x", "y", "z"):
        if vertex[key].dtype.kind != "f":
            raise RawSceneError(path, f"vertex property {key!r} is {vertex[key].dtype}; expected float")
        bad = ~np.isfinite(vertex[key])
        if bad.any():
            raise RawSceneError(
                path,
                f"vertex coordinates contain NaN/inf ({int(bad.sum())} in {key!r}, first at vertex {int(np.flatnonzero(bad)[0])})",
            )
    if faces.size and (faces.min() < 0 or faces.max() >= n):
        raise RawSceneError(path, f"faces: vertex index out of range [0, {n})")
    return PlyMesh(vertex=vertex, faces=faces)


def _read_json(path: Path) -> dict:
    data = _read_bytes(path)
    if not data.strip():
        raise RawSceneError(path, "empty file; expected a JSON object")
    try:
        obj = json.loads(decode_text(path, data))
    except json.JSONDecodeError as e:
        raise RawSceneError(path, f"invalid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise RawSceneError(path, "expected a JSON object")
    return obj


def _int_array(path: Path, field: str, values) -> np.ndarray:
    """``(K,)`` int64 from a JSON list of integers; floats, bools, strings or nesting are errors."""
    if not isinstance(values, list):
        raise RawSceneError(path, f"{field}: expected a list of integers, got {type(values).__name__}")
    arr = np.asarray(values) if values else np.zeros(0, np.int64)
    if arr.ndim != 1 or arr.dtype.kind not in "iu" or any(type(v) is bool for v in values):
        bad = next((v for v in values if isinstance(v, bool) or not isinstance(v, int)), None)
        raise RawSceneError(path, f"{field}: expected a flat list of integers, found {bad!r}")
    return arr.astype(np.int64)


def read_segs(path: str | Path, num_vertices: int | None = None) -> np.ndarray:
    """Over-segmentation ``segIndices`` ``(V,)`` int64; checks the length against ``num_vertices``.

    Non-integer ids (``1.5``, ``"3"``, ``true``) are errors, never coerced.
    """
    path = Path(path)
    obj = _read_json(path)
    if "segIndices" not in obj:
        raise RawSceneError(path, "missing key 'segIndices'")
    seg = _int_array(path, "segIndices", obj["segIndices"])
    if num_vertices is not None and seg.shape[0] != num_vertices:
        raise RawSceneError(
            path, f"segIndices has {seg.shape[0]} entries but the mesh has {num_vertices} vertices"
        )
    if seg.size and seg.min() < 0:
        raise RawSceneError(path, "segIndices: negative segment id")
    return seg


@dataclass
class SegGroup:
    """One annotated object: ``id`` (0-based, Pointcept instance id), ``object_id``, raw ``label``."""

    id: int
    object_id: int
    label: str
    segments: np.ndarray


def _strict_int(path: Path, field: str, v) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise RawSceneError(path, f"{field}: expected an integer, got {v!r}")
    return v


def read_aggregation(path: str | Path) -> list[SegGroup]:
    """``segGroups`` of ``<scene>.aggregation.json`` in file order.

    Every group needs an integer ``objectId``, a string ``label`` and a list of integer
    ``segments``; ``id`` (default: the position) must be an integer, unique across groups.
    """
    path = Path(path)
    obj = _read_json(path)
    groups = obj.get("segGroups")
    if not isinstance(groups, list):
        raise RawSceneError(path, "missing list 'segGroups'")
    out = []
    seen: dict[int, int] = {}
    for i, g in enumerate(groups):
        if not isinstance(g, dict):
            raise RawSceneError(path, f"segGroups[{i}]: expected an object, got {type(g).__name__}")
        missing = [k for k in ("objectId", "label", "segments") if k not in g]
        if missing:
            raise RawSceneError(
                path, f"segGroups[{i}]: missing {missing}; expected objectId, label, segments"
            )
        if not isinstance(g["label"], str) or not g["label"].strip():
            raise RawSceneError(
                path, f"segGroups[{i}].label: expected a non-empty string, got {g['label']!r}"
            )
        gid = _strict_int(path, f"segGroups[{i}].id", g.get("id", i))
        if gid < 0:
            raise RawSceneError(path, f"segGroups[{i}].id: expected >= 0, got {gid}")
        if gid in seen:
            raise RawSceneError(path, f"segGroups[{i}].id {gid} repeats segGroups[{seen[gid]}].id")
        seen[gid] = i
        out.append(
            SegGroup(
                id=gid,
                object_id=_strict_int(path, f"segGroups[{i}].objectId", g["objectId"]),
                label=g["label"],
                segments=_int_array(path, f"segGroups[{i}].segments", g["segments"]),
            )
        )
    return out


def check_group_segments(groups: list[SegGroup], seg: np.ndarray, agg_path: Path, segs_path: Path) -> None:
    """Every segment a group names must occur in the over-segmentation ``seg (V,)``.

    Raises :class:`RawSceneError` on ``agg_path`` naming the scene, the group and ``segs_path``.
    """
    present = np.unique(seg)
    for i, g in enumerate(groups):
        missing = np.setdiff1d(g.segments, present)
        if missing.size:
            scene = Path(agg_path).parent.name
            raise RawSceneError(
                agg_path,
                f"scene {scene}: segGroups[{i}] (objectId {g.object_id}, {g.label!r}) names {missing.size} "
                f"segment(s) missing from {Path(segs_path).name}, e.g. {missing[:5].tolist()}",
            )


def read_axis_alignment(path: str | Path) -> np.ndarray | None:
    """The ``axisAlignment`` 4x4 row-major matrix of ``<scene>.txt``, or ``None`` when absent (test scans).

    The 16 values must be finite and the matrix an invertible affine transform (last row ``0 0 0 1``).
    """
    path = Path(path)
    text = decode_text(path, _read_bytes(path))
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "axisAlignment":
            try:
                vals = [float(v) for v in value.split()]
            except ValueError:
                raise RawSceneError(path, "axisAlignment: expected 16 numbers") from None
            if len(vals) != 16:
                raise RawSceneError(path, f"axisAlignment: expected 16 numbers, got {len(vals)}")
            m = np.asarray(vals, dtype=np.float64).reshape(4, 4)
            if not np.isfinite(m).all():
                raise RawSceneError(path, "axisAlignment: contains NaN/inf")
            if not np.allclose(m[3], (0.0, 0.0, 0.0, 1.0), atol=1e-6):
                raise RawSceneError(path, f"axisAlignment: last row must be 0 0 0 1, got {m[3].tolist()}")
            if abs(np.linalg.det(m[:3, :3])) < 1e-6:
                raise RawSceneError(path, "axisAlignment: the 3x3 part is singular (not a rigid alignment)")
            return m
    return None


@dataclass
class LabelTable:
    """``scannetv2-labels.combined.tsv``: raw category -> tsv ``id`` and ``nyu40id``."""

    raw_to_id: dict[str, int]
    raw_to_nyu40: dict[str, int]


def read_label_tsv(path: str | Path) -> LabelTable:
    """Parse the label tsv by header names (``id``, ``raw_category``, ``nyu40id``); UTF-8, BOM allowed."""
    path = Path(path)
    lines = decode_text(path, _read_bytes(path)).splitlines()
    if not lines or not lines[0].strip():
        raise RawSceneError(
            path, "empty file; expected a tab-separated header with id, raw_category, nyu40id"
        )
    header = lines[0].split("\t")
    try:
        c_id, c_raw, c_nyu = (header.index(k) for k in ("id", "raw_category", "nyu40id"))
    except ValueError:
        raise RawSceneError(
            path, f"header must contain id, raw_category, nyu40id; got {header[:6]}"
        ) from None
    raw_to_id: dict[str, int] = {}
    raw_to_nyu40: dict[str, int] = {}
    for ln, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) <= max(c_id, c_raw, c_nyu):
            raise RawSceneError(path, f"line {ln}: expected at least {max(c_id, c_raw, c_nyu) + 1} columns")
        try:
            raw_to_id[cols[c_raw]] = int(cols[c_id])
            raw_to_nyu40[cols[c_raw]] = int(cols[c_nyu])
        except ValueError:
            raise RawSceneError(path, f"line {ln}: id and nyu40id must be integers") from None
    if not raw_to_id:
        raise RawSceneError(path, "no category rows after the header")
    return LabelTable(raw_to_id=raw_to_id, raw_to_nyu40=raw_to_nyu40)


SCENE_ID_RE = re.compile(r"^scene\d{4}_\d{2}$")


def read_split(path: str | Path) -> list[str]:
    """Scene ids ``sceneXXXX_XX``, one per line (blank lines ignored; UTF-8, BOM allowed).

    A line that is not a scene id, or an id listed twice, is an error naming ``file:line``.
    """
    path = Path(path)
    ids: list[str] = []
    seen: dict[str, int] = {}
    for ln, line in enumerate(decode_text(path, _read_bytes(path)).splitlines(), start=1):
        s = line.strip()
        if not s:
            continue
        if not SCENE_ID_RE.match(s):
            raise RawSceneError(path, f"line {ln}: expected a scene id like scene0000_00, got {s[:40]!r}")
        if s in seen:
            raise RawSceneError(path, f"line {ln}: {s} is already listed on line {seen[s]}")
        seen[s] = ln
        ids.append(s)
    return ids
