"""PNG output through Pillow, written atomically."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from pc3d.io.atomic import atomic_write


def write_png(path: str | os.PathLike, image: np.ndarray, compress_level: int = 6) -> Path:
    """Atomically write ``image (H, W, 3)`` RGB or ``(H, W)`` grey uint8 as an 8-bit PNG.

    The bytes depend only on the pixels and ``compress_level`` (0-9), so equal images give equal files.
    """
    from PIL import Image

    img = np.ascontiguousarray(image)
    if img.dtype != np.uint8 or img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[2] != 3):
        raise ValueError(f"{path}: expected a uint8 (H, W) or (H, W, 3) image, got {img.dtype} {img.shape}")
    pil = Image.fromarray(img, mode="RGB" if img.ndim == 3 else "L")
    return atomic_write(path, lambda f: pil.save(f, format="PNG", compress_level=compress_level))
