"""Low-level KITTI file readers (no pickle anywhere). Writing goes through :mod:`pc3d.io`."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

#: Image size used when ``image_2/<id>.png`` is absent (every KITTI object image is about this size).
DEFAULT_IMAGE_SIZE = (1242, 375)
#: Largest plausible |coordinate| of a LiDAR point in metres (the HDL-64E reaches about 120 m).
MAX_RANGE_M = 1000.0
#: Largest plausible image side in pixels.
MAX_IMAGE_SIDE = 16384


def read_text(path: str | Path, what: str) -> str:
    """UTF-8 text of a KITTI text file (a leading BOM is dropped); ``ValueError`` names the file
    when it cannot be read or is not UTF-8."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ValueError(f"{path}: cannot read {what} file ({e.strerror or e})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise ValueError(
            f"{path}:{line}: {what} file is not UTF-8 text (byte 0x{data[e.start]:02x})"
        ) from None


def read_velodyne(path: str | Path) -> np.ndarray:
    """``(N, 4)`` float32 ``x, y, z, reflectance`` from a velodyne ``.bin``.

    Raises ``ValueError`` naming the file when it is empty, its size is not a multiple of 16 bytes,
    it holds NaN/inf values, or coordinates beyond :data:`MAX_RANGE_M` (the sign of a file that is
    not float32, e.g. float64).
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ValueError(f"{path}: cannot read velodyne file ({e.strerror or e})") from None
    if not data:
        raise ValueError(
            f"{path}: empty velodyne file (0 bytes); expected float32 x, y, z, reflectance points"
        )
    if len(data) % 16:
        raise ValueError(
            f"{path}: size {len(data)} bytes is not a multiple of 16 (float32 x, y, z, reflectance)"
        )
    pts = np.frombuffer(data, dtype="<f4").reshape(-1, 4).copy()
    bad = ~np.isfinite(pts).all(axis=1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{path}: {int(bad.sum())} point(s) with NaN/inf values (first at point {first})")
    far = np.abs(pts[:, :3]).max(axis=1) > MAX_RANGE_M
    if far.any():
        first = int(np.flatnonzero(far)[0])
        raise ValueError(
            f"{path}: {int(far.sum())} point(s) beyond {MAX_RANGE_M:.0f} m (first at point {first}); "
            "expected little-endian float32 x, y, z, reflectance"
        )
    return pts


def read_image_size(path: str | Path) -> tuple[int, int]:
    """``(W, H)`` of a PNG from its IHDR chunk (no image decoding); ``ValueError`` names the file when
    it is not a PNG or its size is 0 or above :data:`MAX_IMAGE_SIDE`."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(24)
    except OSError as e:
        raise ValueError(f"{path}: cannot read image file ({e.strerror or e})") from None
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise ValueError(f"{path}: not a PNG file")
    w, h = struct.unpack(">II", head[16:24])
    if not (0 < w <= MAX_IMAGE_SIDE and 0 < h <= MAX_IMAGE_SIDE):
        raise ValueError(f"{path}: image size {w}x{h}; expected 1..{MAX_IMAGE_SIDE} pixels per side")
    return int(w), int(h)


def read_json(path: str | Path) -> Any:
    """Parsed JSON of ``path`` (UTF-8)."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)
