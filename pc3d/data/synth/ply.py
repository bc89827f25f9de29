"""Binary little-endian PLY meshes in the layout of ScanNet's ``_vh_clean_2.ply`` files.

Header (byte-identical structure to the real files)::

    ply
    format binary_little_endian 1.0
    comment VCGLIB generated
    element vertex N
    property float x / y / z
    property uchar red / green / blue / alpha
    [property ushort label]            (``_vh_clean_2.labels.ply`` only, comment MLIB generated)
    element face F
    property list uchar int vertex_indices
    end_header
"""

from __future__ import annotations

import os

import numpy as np

from pc3d.io import write_bytes

_VERTEX = [
    ("x", "<f4"),
    ("y", "<f4"),
    ("z", "<f4"),
    ("red", "u1"),
    ("green", "u1"),
    ("blue", "u1"),
    ("alpha", "u1"),
]
_FACE = np.dtype([("count", "u1"), ("index", "<i4", (3,))])


def encode_ply_mesh(
    xyz: np.ndarray, rgba: np.ndarray, faces: np.ndarray, label: np.ndarray | None = None
) -> bytes:
    """Binary PLY bytes for ``xyz (N, 3)``, ``rgba (N, 4) uint8``, ``faces (F, 3)`` and optional
    per-vertex ``label (N,)`` (written as ``ushort label`` like ScanNet's ``.labels.ply``)."""
    xyz = np.asarray(xyz)
    rgba = np.asarray(rgba)
    faces = np.asarray(faces)
    n = len(xyz)
    if xyz.shape != (n, 3) or rgba.shape != (n, 4) or rgba.dtype != np.uint8:
        raise ValueError(
            f"encode_ply_mesh: need xyz (N,3) and rgba (N,4) uint8, got {xyz.shape}, {rgba.shape} {rgba.dtype}"
        )
    if faces.ndim != 2 or faces.shape[1] != 3 or (faces.size and (faces.min() < 0 or faces.max() >= n)):
        raise ValueError(
            f"encode_ply_mesh: faces must be (F, 3) indices in [0, {n}), got shape {faces.shape}"
        )
    fields = list(_VERTEX) + ([("label", "<u2")] if label is not None else [])
    vert = np.empty(n, dtype=np.dtype(fields))
    vert["x"], vert["y"], vert["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    vert["red"], vert["green"], vert["blue"], vert["alpha"] = rgba.T
    if label is not None:
        label = np.asarray(label)
        if label.shape != (n,) or label.min(initial=0) < 0 or label.max(initial=0) > 65535:
            raise ValueError(f"encode_ply_mesh: label must be (N,) in [0, 65535], got {label.shape}")
        vert["label"] = label
    face = np.empty(len(faces), dtype=_FACE)
    face["count"] = 3
    face["index"] = faces
    lines = [
        "ply",
        "format binary_little_endian 1.0",
        "comment MLIB generated" if label is not None else "comment VCGLIB generated",
        f"element vertex {n}",
        "property float x",
        "property float y",
        "property float z",
        "property uchar red",
        "property uchar green",
        "property uchar blue",
        "property uchar alpha",
    ]
    if label is not None:
        lines.append("property ushort label")
    lines += [f"element face {len(faces)}", "property list uchar int vertex_indices", "end_header"]
    header = ("\n".join(lines) + "\n").encode("ascii")
    return header + vert.tobytes() + face.tobytes()


def write_ply_mesh(
    path: str | os.PathLike,
    xyz: np.ndarray,
    rgba: np.ndarray,
    faces: np.ndarray,
    label: np.ndarray | None = None,
) -> None:
    """Atomically write :func:`encode_ply_mesh` output to ``path``."""
    write_bytes(path, encode_ply_mesh(xyz, rgba, faces, label))
