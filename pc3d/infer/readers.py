"""Read a scan from any supported file into a :class:`~pc3d.infer.cloud.Cloud`.

==============================  ==========================================================
suffix                          reader
==============================  ==========================================================
``.ply`` ``.pcd`` ``.pts``      Open3D (tensor API: colours, normals and intensity survive)
``.las`` ``.laz``               laspy (``.laz`` through its lazrs backend)
``.bin``                        KITTI velodyne: float32 rows ``x, y, z, reflectance``
``.npy``                        numpy: an ``(N, C)`` array, columns as for text files
``.npz``                        numpy: arrays ``coord`` (or ``points``/``xyz``), optional
                                ``color``/``colors``/``rgb``, ``normal``/``normals``,
                                ``intensity``/``reflectance``
``.txt`` ``.xyz`` ``.csv``      numeric columns (comma, space or tab separated; ``#`` comments)
==============================  ==========================================================

Columns of text/``.npy`` files are named by ``columns`` (e.g. ``"x,y,z,i,r,g,b"``; ``_`` skips a
column) or, by default, from their count: 3 ``x,y,z``; 4 ``x,y,z,i``; 6 ``x,y,z,r,g,b``;
7 ``x,y,z,i,r,g,b``; 9 ``x,y,z,r,g,b,nx,ny,nz``; 10 ``x,y,z,i,r,g,b,nx,ny,nz``.
Colours may be 0..255, 0..65535 or floats in [0, 1]. Intensities above 1 are divided by the
largest value of their type (255 or 65535) or, for floats, by the file's maximum.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pc3d.infer.cloud import Cloud, InputError

OPEN3D_SUFFIXES = (".ply", ".pcd", ".pts")
TEXT_SUFFIXES = (".txt", ".xyz", ".csv")
SUFFIXES = (*OPEN3D_SUFFIXES, ".las", ".laz", ".bin", ".npy", ".npz", *TEXT_SUFFIXES)
COLUMN_NAMES = ("x", "y", "z", "r", "g", "b", "nx", "ny", "nz", "i", "_")
DEFAULT_COLUMNS = {
    3: "x,y,z",
    4: "x,y,z,i",
    6: "x,y,z,r,g,b",
    7: "x,y,z,i,r,g,b",
    9: "x,y,z,r,g,b,nx,ny,nz",
    10: "x,y,z,i,r,g,b,nx,ny,nz",
}


def read_cloud(path: str | Path, columns: str | None = None) -> Cloud:
    """Read ``path`` by its suffix (see the module docstring) and drop NaN/inf points (with a warning).

    Raises:
        InputError: unsupported suffix, unreadable or malformed file, or no points; the message
            names the file.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise InputError(f"{path}: unsupported file type {suffix!r} (supported: {', '.join(SUFFIXES)})")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: the file is empty")
    try:
        if suffix in OPEN3D_SUFFIXES:
            cloud = _read_open3d(path)
        elif suffix in (".las", ".laz"):
            cloud = _read_las(path)
        elif suffix == ".bin":
            cloud = _read_kitti_bin(path)
        elif suffix == ".npz":
            cloud = _read_npz(path)
        elif suffix == ".npy":
            cloud = columns_to_cloud(_load_npy(path), columns, str(path))
        else:
            cloud = columns_to_cloud(_load_text(path), columns, str(path))
    except InputError:
        raise
    except (OSError, ValueError, RuntimeError, EOFError, KeyError) as err:
        raise InputError(f"{path}: cannot read it as {suffix}: {err}") from err
    return cloud.finite()


def _read_open3d(path: Path) -> Cloud:
    import open3d as o3d

    pcd = o3d.t.io.read_point_cloud(str(path))
    attrs = pcd.point
    if "positions" not in attrs or len(attrs["positions"]) == 0:
        raise InputError(f"{path}: no points could be read (an unsupported variant of {path.suffix}?)")
    coord = attrs["positions"].numpy()
    color = attrs["colors"].numpy() if "colors" in attrs else None
    normal = attrs["normals"].numpy() if "normals" in attrs else None
    intensity = None
    for key in ("intensity", "reflectance", "scalar_intensity", "scalar_Intensity"):
        if key in attrs:
            intensity = normalise_intensity(attrs[key].numpy().reshape(-1))
            break
    return Cloud(coord=coord, color=color, normal=normal, intensity=intensity, source=str(path))


def _read_las(path: Path) -> Cloud:
    import laspy

    try:
        las = laspy.read(str(path))
    except laspy.errors.LaspyException as err:
        raise InputError(f"{path}: cannot read it as {path.suffix}: {err}") from err
    coord = np.stack([np.asarray(las.x), np.asarray(las.y), np.asarray(las.z)], axis=1)
    dims = set(las.point_format.dimension_names)
    color = None
    if {"red", "green", "blue"} <= dims:
        rgb = np.stack([np.asarray(las.red), np.asarray(las.green), np.asarray(las.blue)], axis=1)
        if rgb.size and rgb.max() > 0:  # formats with an RGB field but no colours store zeros
            color = rgb
    intensity = normalise_intensity(np.asarray(las.intensity)) if "intensity" in dims else None
    return Cloud(coord=coord, color=color, intensity=intensity, source=str(path))


def _read_kitti_bin(path: Path) -> Cloud:
    size = path.stat().st_size
    if size % 16:
        raise InputError(
            f"{path}: {size} bytes is not a multiple of 16 (KITTI .bin: float32 x, y, z, reflectance)"
        )
    pts = np.fromfile(path, dtype=np.float32).reshape(-1, 4)
    return Cloud(coord=pts[:, :3], intensity=pts[:, 3], source=str(path))


NPZ_KEYS = {
    "coord": ("coord", "points", "xyz", "positions"),
    "color": ("color", "colors", "rgb"),
    "normal": ("normal", "normals"),
    "intensity": ("intensity", "reflectance", "strength"),
}


def _read_npz(path: Path) -> Cloud:
    with np.load(path, allow_pickle=False) as z:
        found = {field: next((k for k in keys if k in z.files), None) for field, keys in NPZ_KEYS.items()}
        if found["coord"] is None:
            raise InputError(
                f"{path}: no point array; expected one of {list(NPZ_KEYS['coord'])} (arrays: {z.files})"
            )
        arrays = {field: z[key] for field, key in found.items() if key is not None}
    coord = arrays.pop("coord")
    if coord.ndim != 2 or coord.shape[1] < 3:
        raise InputError(f"{path}: {found['coord']}: expected an (N, 3) array, got shape {coord.shape}")
    if coord.shape[1] > 3 and "intensity" not in arrays and coord.shape[1] == 4:
        arrays["intensity"] = coord[:, 3]
    if "intensity" in arrays:
        arrays["intensity"] = normalise_intensity(arrays["intensity"].reshape(-1))
    return Cloud(coord=coord[:, :3], source=str(path), **arrays)


def _load_npy(path: Path) -> np.ndarray:
    arr = np.load(path, allow_pickle=False)
    if arr.dtype.names:  # structured array: use its fields as columns
        arr = np.stack([arr[name] for name in arr.dtype.names], axis=1)
    return arr


def _load_text(path: Path) -> np.ndarray:
    with open(path, encoding="utf-8", errors="replace") as f:
        first = next((line for line in f if line.strip() and not line.lstrip().startswith("#")), "")
    delimiter = "," if "," in first else None
    try:
        arr = np.loadtxt(path, delimiter=delimiter, comments="#", ndmin=2, dtype=np.float64)
    except ValueError:
        # one header line of column names (CloudCompare, PDAL exports)
        arr = np.loadtxt(path, delimiter=delimiter, comments="#", ndmin=2, dtype=np.float64, skiprows=1)
    return arr


def parse_columns(columns: str, width: int, source: str) -> list[str]:
    """Column names of ``columns`` (``"x,y,z,r,g,b"``) checked against ``width`` columns."""
    names = [c.strip().lower() for c in columns.split(",")]
    unknown = [c for c in names if c not in COLUMN_NAMES]
    if unknown:
        raise InputError(
            f"--columns {columns!r}: unknown names {unknown}; expected some of {list(COLUMN_NAMES)}"
        )
    if len(names) != width:
        raise InputError(
            f"{source}: --columns {columns!r} names {len(names)} columns but the data has {width}"
        )
    for group in (("x", "y", "z"),):
        if not all(g in names for g in group):
            raise InputError(f"--columns {columns!r}: must name x, y and z")
    for group in (("r", "g", "b"), ("nx", "ny", "nz")):
        if any(g in names for g in group) and not all(g in names for g in group):
            raise InputError(f"--columns {columns!r}: give all of {', '.join(group)} or none")
    dup = sorted({c for c in names if c != "_" and names.count(c) > 1})
    if dup:
        raise InputError(f"--columns {columns!r}: repeated names {dup}")
    return names


def columns_to_cloud(arr: np.ndarray, columns: str | None, source: str) -> Cloud:
    """A :class:`Cloud` from an ``(N, C)`` numeric array whose columns are named by ``columns``
    (default: from ``C``, see the module docstring)."""
    arr = np.asarray(arr)
    if arr.ndim != 2:
        raise InputError(f"{source}: expected an (N, C) array of point rows, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise InputError(f"{source}: the file holds no points")
    if not np.issubdtype(arr.dtype, np.number):
        raise InputError(f"{source}: expected numbers, got dtype {arr.dtype}")
    width = arr.shape[1]
    if columns is None:
        if width not in DEFAULT_COLUMNS:
            raise InputError(
                f"{source}: {width} columns; give --columns (e.g. x,y,z,i,r,g,b; known layouts: "
                + "; ".join(f"{k}: {v}" for k, v in DEFAULT_COLUMNS.items())
                + ")"
            )
        columns = DEFAULT_COLUMNS[width]
    names = parse_columns(columns, width, source)

    def cols(*keys: str) -> np.ndarray | None:
        if not all(k in names for k in keys):
            return None
        return arr[:, [names.index(k) for k in keys]]

    color = cols("r", "g", "b")
    if color is not None and np.issubdtype(color.dtype, np.floating):
        finite = color[np.isfinite(color)]
        if finite.size and finite.max() > 255 and np.allclose(finite, np.round(finite)):
            color = color.astype(np.int64)  # 16-bit colours written as numbers
    intensity = cols("i")
    return Cloud(
        coord=cols("x", "y", "z"),
        color=color,
        normal=cols("nx", "ny", "nz"),
        intensity=None if intensity is None else normalise_intensity(intensity[:, 0]),
        source=source,
    )


def normalise_intensity(values: np.ndarray) -> np.ndarray:
    """Reflectance ``(N,)`` in [0, 1]: values already in [0, 1] unchanged; integers divided by 255
    or 65535 (the smallest that holds the maximum); other floats by their maximum."""
    v = np.asarray(values)
    finite = v[np.isfinite(v)] if np.issubdtype(v.dtype, np.floating) else v
    top = float(finite.max()) if finite.size else 0.0
    out = v.astype(np.float32)
    if top <= 1.0:
        return out
    if np.issubdtype(v.dtype, np.integer) or np.allclose(finite, np.round(finite)):
        return out / np.float32(255.0 if top <= 255 else 65535.0)
    return out / np.float32(top)


def expand_inputs(paths: Sequence[str | Path]) -> list[Path]:
    """Files named directly, plus every supported file (sorted, recursively) in named folders.

    Raises:
        InputError: a path that does not exist, or a folder holding no supported file.
    """
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in SUFFIXES)
            if not found:
                raise InputError(f"{p}: the folder holds no point-cloud file ({', '.join(SUFFIXES)})")
            out += found
        elif p.exists():
            out.append(p)
        else:
            raise InputError(f"{p}: no such file or folder")
    return out
