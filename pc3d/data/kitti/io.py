"""Low-level KITTI file readers and atomic writers (no pickle anywhere)."""

from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

#: Image size used when ``image_2/<id>.png`` is absent (every KITTI object image is about this size).
DEFAULT_IMAGE_SIZE = (1242, 375)


def read_velodyne(path: str | Path) -> np.ndarray:
    """``(N, 4)`` float32 ``x, y, z, reflectance`` from a velodyne ``.bin``.

    Raises ``ValueError`` naming the file when its size is not a multiple of 16 bytes or it holds
    NaN/inf values.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise ValueError(f"{path}: cannot read velodyne file ({e})") from e
    if size % 16:
        raise ValueError(f"{path}: size {size} bytes is not a multiple of 16 (float32 x, y, z, reflectance)")
    pts = np.fromfile(path, dtype="<f4").reshape(-1, 4)
    bad = ~np.isfinite(pts).all(axis=1)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{path}: {int(bad.sum())} point(s) with NaN/inf values (first at point {first})")
    return pts


def read_image_size(path: str | Path) -> tuple[int, int]:
    """``(W, H)`` of a PNG from its IHDR chunk (no image decoding)."""
    path = Path(path)
    with open(path, "rb") as f:
        head = f.read(24)
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        raise ValueError(f"{path}: not a PNG file")
    w, h = struct.unpack(">II", head[16:24])
    return int(w), int(h)


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_save_npy(path: str | Path, arr: np.ndarray) -> None:
    """``np.save`` to a temporary file then rename, so readers never see a partial file."""
    _atomic(Path(path), lambda f: np.save(f, np.ascontiguousarray(arr), allow_pickle=False))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """JSON dump to a temporary file then rename."""
    data = json.dumps(obj, separators=(",", ":")).encode()
    _atomic(Path(path), lambda f: f.write(data))


def atomic_write_text(path: str | Path, text: str) -> None:
    _atomic(Path(path), lambda f: f.write(text.encode()))


def read_json(path: str | Path) -> Any:
    with open(path) as f:
        return json.load(f)
