"""Colour augmentations on ``color (N, 3)`` float in [0, 255] (Pointcept semantics)."""

from __future__ import annotations

import numpy as np

from pc3d.data.transforms.base import Sample, bounds, check_prob


class ChromaticAutoContrast:
    """With probability ``p`` blend colours with their per-channel min-max stretched version.

    ``blend_factor=None`` draws it from ``U(0, 1)``.
    """

    def __init__(self, p: float = 0.2, blend_factor: float | None = None):
        self.p = check_prob("ChromaticAutoContrast.p", p)
        self.blend_factor = blend_factor

    def __call__(self, data: Sample, rng: np.random.Generator) -> Sample:
        if "color" not in data or rng.random() >= self.p:
            return data
        c = data["color"].astype(np.float32)
        lo, hi = bounds(c)
        scale = 255.0 / np.maximum(hi - lo, 1e-6)
        contrast = (c - lo) * scale
        bf = rng.random() if self.blend_factor is None else self.blend_factor
        data["color"] = ((1 - bf) * c + bf * contrast).astype(np.float32)
        return data

    def __repr__(self) -> str:
        return f"ChromaticAutoContrast(p={self.p}, blend_factor={self.blend_factor})"


class ChromaticTranslation:
    """With probability ``p`` add one offset ``(U(0,1)^3 - 0.5) * 2 * ratio * 255`` to all colours, clip to [0, 255]."""

    def __init__(self, p: float = 0.95, ratio: float = 0.05):
        self.p = check_prob("ChromaticTranslation.p", p)
        self.ratio = float(ratio)

    def __call__(self, data: Sample, rng: np.random.Generator) -> Sample:
        if "color" not in data or rng.random() >= self.p:
            return data
        tr = ((rng.random(3) - 0.5) * 255 * 2 * self.ratio).astype(np.float32)
        data["color"] = np.clip(data["color"].astype(np.float32) + tr, 0, 255)
        return data

    def __repr__(self) -> str:
        return f"ChromaticTranslation(p={self.p}, ratio={self.ratio})"


class ChromaticJitter:
    """With probability ``p`` add per-point Gaussian noise ``N(0, (std * 255)^2)``, clip to [0, 255]."""

    def __init__(self, p: float = 0.95, std: float = 0.005):
        self.p = check_prob("ChromaticJitter.p", p)
        if std < 0:
            raise ValueError(f"ChromaticJitter.std: must be >= 0, got {std}")
        self.std = float(std)

    def __call__(self, data: Sample, rng: np.random.Generator) -> Sample:
        if "color" not in data or rng.random() >= self.p:
            return data
        c = data["color"].astype(np.float32)
        noise = rng.standard_normal(c.shape, dtype=np.float32) * np.float32(self.std * 255)
        data["color"] = np.clip(c + noise, 0, 255)
        return data

    def __repr__(self) -> str:
        return f"ChromaticJitter(p={self.p}, std={self.std})"


class NormalizeColor:
    """``color / 127.5 - 1`` (to [-1, 1])."""

    def __call__(self, data: Sample, rng: np.random.Generator) -> Sample:
        if "color" in data:
            data["color"] = (data["color"].astype(np.float32) / np.float32(127.5) - 1).astype(np.float32)
        return data

    def __repr__(self) -> str:
        return "NormalizeColor()"
