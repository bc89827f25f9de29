"""A Velodyne HDL-64E model: beam layout, ray generation and the return model (noise, dropout, intensity).

The HDL-64E has 64 lasers in two blocks: the upper 32 span +2.0 to -8.33 deg (about 1/3 deg apart), the
lower 32 span -8.83 to -24.33 deg (1/2 deg apart); KITTI mounts it 1.73 m above the road.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pc3d.data.synth.street_objects import MAT_TABLE

MOUNT_HEIGHT = 1.73


def hdl64_elevations() -> np.ndarray:
    """Nominal beam elevations ``(64,)`` in degrees, top beam first, plus a fixed per-unit calibration
    scatter (the same for every frame, like a real sensor's individual laser offsets)."""
    nominal = np.concatenate([np.linspace(2.0, -8.33, 32), np.linspace(-8.83, -24.33, 32)])
    scatter = np.random.default_rng(64).normal(0.0, 0.02, 64)
    return nominal + scatter


@dataclass(frozen=True)
class HDL64:
    """Spinning LiDAR model.

    Args:
        azimuth_steps: firings per revolution and laser (KITTI frames hold ~120k points).
        max_range: returns beyond this are dropped (m).
        noise_clip: range noise is clipped at this magnitude (m); must stay below the object inset.
    """

    azimuth_steps: int = 2000
    max_range: float = 120.0
    noise_clip: float = 0.04

    def rays(self) -> np.ndarray:
        """Ray directions ``(64 * azimuth_steps, 3)`` in ring-major order (top laser first)."""
        el = np.deg2rad(hdl64_elevations())
        az = np.pi - 2 * np.pi * (np.arange(self.azimuth_steps) + 0.5) / self.azimuth_steps
        gain = np.cos(el)[:, None]
        d = np.stack(
            [
                gain * np.cos(az)[None],
                gain * np.sin(az)[None],
                np.broadcast_to(np.sin(el)[:, None], (64, len(az))),
            ],
            -1,
        )
        return d.reshape(-1, 3)

    def returns(
        self,
        rng: np.random.Generator,
        directions: np.ndarray,
        t_hit: np.ndarray,
        normals: np.ndarray,
        mat: np.ndarray,
        albedo: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Turn ray hits into points.

        Args:
            directions: ``(R, 3)`` unit ray directions; t_hit ``(R,)`` (inf = no hit); normals ``(R, 3)``;
            mat ``(R,)`` material ids and albedo ``(R,)`` of the hit faces (ignored where no hit).

        Returns:
            ``points (P, 4) float32`` (x, y, z, reflectance), ``keep (R,)`` bool rays that returned,
            and ``noisy_range (P,)``.
        """
        R = len(t_hit)
        hit = np.isfinite(t_hit) & (t_hit < self.max_range) & (t_hit > 0.9)
        m = np.where(hit, mat, 0)
        drop_p = MAT_TABLE[m, 1] + 0.3 * np.clip((t_hit - 60.0) / 60.0, 0.0, 1.0) + 0.01
        keep = hit & (rng.random(R) >= drop_p)
        sigma = MAT_TABLE[m, 2]
        noise = np.clip(rng.normal(0.0, 1.0, R) * sigma, -self.noise_clip, self.noise_clip)
        r = np.where(keep, t_hit + noise, 0.0)
        cos_inc = np.abs(np.einsum("ij,ij->i", normals, directions))
        beam_gain = (
            np.repeat(0.85 + 0.3 * np.random.default_rng(65).random(64), R // 64) if R % 64 == 0 else 1.0
        )
        texture = np.exp(rng.normal(0.0, 0.3, R))  # surface texture / wetness
        inten = (
            albedo * (0.6 + 0.4 * cos_inc) * (1.0 - 0.35 * np.clip(t_hit / 80.0, 0, 1)) * beam_gain * texture
        )
        inten = inten + rng.normal(0.0, 0.03, R)
        inten = np.where(inten < 0.04, 0.0, np.clip(inten, 0.0, 0.99))
        inten = np.round(inten, 2)
        pts = directions[keep] * r[keep, None]
        out = np.concatenate([pts, inten[keep, None]], 1).astype(np.float32)
        return out, keep, r[keep]
