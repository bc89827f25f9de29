"""Readers for the raw ScanNet v2 files of one scan (no third-party PLY/pandas dependency).

Every reader raises :class:`RawSceneError` (a ``ValueError``) naming the file and what was
expected, so a batch conversion can report the scene and file that failed.
"""

from __future__ import annotations

import json
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


def _parse_ply_header(path: Path, data: bytes) -> tuple[str, list[tuple[str, int, list]], int]:
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise RawSceneError(path, "not a PLY file (missing 'ply' magic or 'end_header')")
    nl = data.find(b"\n", end)
    if nl < 0:
        raise RawSceneError(path, "truncated PLY header")
    fmt = None
    elements: list[tuple[str, int, list]] = []
    for raw in data[:end].decode("ascii", errors="replace").splitlines()[1:]:
        tok = raw.split()
        if not tok or tok[0] in ("comment", "obj_info"):
            continue
        if tok[0] == "format":
            fmt = tok[1]
        elif tok[0] == "element":
            elements.append((tok[1], int(tok[2]), []))
        elif tok[0] == "property":
            if not elements:
                raise RawSceneError(path, f"property before any element: {raw!r}")
            if tok[1] == "list":
                if tok[2] not in _PLY_TYPES or tok[3] not in _PLY_TYPES:
                    raise RawSceneError(path, f"unknown PLY list type in {raw!r}")
                elements[-1][2].append((tok[4], ("list", _PLY_TYPES[tok[2]], _PLY_TYPES[tok[3]])))
            else:
                if tok[1] not in _PLY_TYPES:
                    raise RawSceneError(path, f"unknown PLY type in {raw!r}")
                elements[-1][2].append((tok[2], _PLY_TYPES[tok[1]]))
    if fmt not in ("binary_little_endian", "binary_big_endian"):
        raise RawSceneError(path, f"unsupported PLY format {fmt!r}; expected binary_little_endian")
    return ("<" if fmt == "binary_little_endian" else ">"), elements, nl + 1


def read_ply_mesh(path: str | Path) -> PlyMesh:
    """Read a binary PLY mesh (ScanNet ``_vh_clean_2.ply``) by property name.

    Returns the vertex properties (``x, y, z, red, green, blue, ...``) and triangle faces
    ``(F, 3)`` int64. Raises :class:`RawSceneError` for a truncated or non-triangle file.
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
    if faces is None:
        faces = np.zeros((0, 3), dtype=np.int64)
    n = len(vertex["x"])
    if faces.size and (faces.min() < 0 or faces.max() >= n):
        raise RawSceneError(path, f"faces: vertex index out of range [0, {n})")
    return PlyMesh(vertex=vertex, faces=faces)


def _read_json(path: Path) -> dict:
    data = _read_bytes(path)
    try:
        obj = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RawSceneError(path, f"invalid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise RawSceneError(path, "expected a JSON object")
    return obj


def read_segs(path: str | Path, num_vertices: int | None = None) -> np.ndarray:
    """Over-segmentation ``segIndices`` ``(V,)`` int64; checks the length against ``num_vertices``."""
    path = Path(path)
    obj = _read_json(path)
    if "segIndices" not in obj:
        raise RawSceneError(path, "missing key 'segIndices'")
    try:
        seg = np.asarray(obj["segIndices"], dtype=np.int64)
    except (TypeError, ValueError):
        raise RawSceneError(path, "segIndices: expected a list of integers") from None
    if seg.ndim != 1:
        raise RawSceneError(path, "segIndices: expected a flat list of integers")
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


def read_aggregation(path: str | Path) -> list[SegGroup]:
    """``segGroups`` of ``<scene>.aggregation.json`` in file order."""
    path = Path(path)
    obj = _read_json(path)
    groups = obj.get("segGroups")
    if not isinstance(groups, list):
        raise RawSceneError(path, "missing list 'segGroups'")
    out = []
    for i, g in enumerate(groups):
        try:
            out.append(
                SegGroup(
                    id=int(g.get("id", i)),
                    object_id=int(g["objectId"]),
                    label=str(g["label"]),
                    segments=np.asarray(g["segments"], dtype=np.int64).reshape(-1),
                )
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise RawSceneError(path, f"segGroups[{i}]: expected objectId, label, segments ({e!r})") from None
    return out


def read_axis_alignment(path: str | Path) -> np.ndarray | None:
    """The ``axisAlignment`` 4x4 row-major matrix of ``<scene>.txt``, or ``None`` when absent (test scans)."""
    path = Path(path)
    text = _read_bytes(path).decode("utf-8", errors="replace")
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "axisAlignment":
            try:
                vals = [float(v) for v in value.split()]
            except ValueError:
                raise RawSceneError(path, "axisAlignment: expected 16 numbers") from None
            if len(vals) != 16:
                raise RawSceneError(path, f"axisAlignment: expected 16 numbers, got {len(vals)}")
            return np.asarray(vals, dtype=np.float64).reshape(4, 4)
    return None


@dataclass
class LabelTable:
    """``scannetv2-labels.combined.tsv``: raw category -> tsv ``id`` and ``nyu40id``."""

    raw_to_id: dict[str, int]
    raw_to_nyu40: dict[str, int]


def read_label_tsv(path: str | Path) -> LabelTable:
    """Parse the label tsv by header names (``id``, ``raw_category``, ``nyu40id``)."""
    path = Path(path)
    lines = _read_bytes(path).decode("utf-8", errors="replace").splitlines()
    if not lines:
        raise RawSceneError(path, "empty file")
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
    return LabelTable(raw_to_id=raw_to_id, raw_to_nyu40=raw_to_nyu40)


def read_split(path: str | Path) -> list[str]:
    """Scene ids, one per line (blank lines ignored)."""
    path = Path(path)
    return [s.strip() for s in _read_bytes(path).decode().splitlines() if s.strip()]
