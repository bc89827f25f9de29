"""Pixel checks on rendered images, shared by the visualizer tests."""

from __future__ import annotations

import numpy as np

from pc3d.viz import colors as C


def color_pixels(image: np.ndarray, rgb, tol: int = 8) -> int:
    """Number of pixels within ``tol`` (max abs channel difference) of ``rgb``."""
    diff = np.abs(image.astype(np.int16) - np.asarray(rgb, dtype=np.int16)).max(-1)
    return int((diff <= tol).sum())


def foreground_fraction(image: np.ndarray, background=C.BACKGROUND, tol: int = 8) -> float:
    """Fraction of pixels that are not background."""
    return 1.0 - color_pixels(image, background, tol) / (image.shape[0] * image.shape[1])


def assert_not_blank(image: np.ndarray, min_fraction: float) -> None:
    frac = foreground_fraction(image)
    assert frac >= min_fraction, f"image is (nearly) blank: {frac:.4f} of the pixels are not background"
