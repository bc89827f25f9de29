"""KITTI object calibration: LiDAR (velodyne) ↔ rectified camera ↔ image 2 transforms.

Frames (datasets.md B1/B2):
- LiDAR: x forward, y left, z up.
- Rectified camera 0 ("rect"): x right, y down, z forward.
- Image 2: pixels ``(u, v)`` of the left colour camera, ``[u·w, v·w, w] = P2 · [x_rect; 1]``.

``x_rect = R0_rect · Tr_velo_to_cam · [x_lidar; 1]`` (both padded to 4×4).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np

from pc3d.data.kitti.io import read_text

#: Keys every calib file must provide, with their matrix shapes. ``Tr_imu_to_velo`` is optional.
REQUIRED_KEYS: dict[str, tuple[int, int]] = {
    "P0": (3, 4),
    "P1": (3, 4),
    "P2": (3, 4),
    "P3": (3, 4),
    "R0_rect": (3, 3),
    "Tr_velo_to_cam": (3, 4),
}
OPTIONAL_KEYS: dict[str, tuple[int, int]] = {"Tr_imu_to_velo": (3, 4)}


def _affine(pts: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``pts (N, 3) @ m[:3, :3].T + m[:3, 3]`` without BLAS (a 3×3 BLAS call thrashes threads on busy CPUs)."""
    pts = np.asarray(pts, dtype=np.float64).reshape(-1, 3)
    out = pts[:, 0:1] * m[:3, 0] + pts[:, 1:2] * m[:3, 1] + pts[:, 2:3] * m[:3, 2]
    out += m[:3, 3]
    return out


@numba.njit(cache=True)
def _fov_kernel(pts: np.ndarray, m: np.ndarray, p2: np.ndarray, w: float, h: float) -> np.ndarray:
    n = pts.shape[0]
    out = np.zeros(n, dtype=np.bool_)
    for i in range(n):
        x, y, z = float(pts[i, 0]), float(pts[i, 1]), float(pts[i, 2])
        rx = m[0, 0] * x + m[0, 1] * y + m[0, 2] * z + m[0, 3]
        ry = m[1, 0] * x + m[1, 1] * y + m[1, 2] * z + m[1, 3]
        rz = m[2, 0] * x + m[2, 1] * y + m[2, 2] * z + m[2, 3]
        d = p2[2, 0] * rx + p2[2, 1] * ry + p2[2, 2] * rz + p2[2, 3]
        if rz <= 0 or d <= 0:
            continue
        u = (p2[0, 0] * rx + p2[0, 1] * ry + p2[0, 2] * rz + p2[0, 3]) / d
        v = (p2[1, 0] * rx + p2[1, 1] * ry + p2[1, 2] * rz + p2[1, 3]) / d
        out[i] = u >= 0 and u < w and v >= 0 and v < h
    return out


def _pad4(m: np.ndarray) -> np.ndarray:
    out = np.eye(4, dtype=np.float64)
    out[: m.shape[0], : m.shape[1]] = m
    return out


@dataclass(frozen=True)
class Calibration:
    """Calibration of one KITTI frame (all matrices float64).

    Attributes:
        P0, P1, P2, P3: ``(3, 4)`` rectified projection matrices of cameras 0–3 (P2 = image_2).
        R0_rect: ``(3, 3)`` rectifying rotation.
        Tr_velo_to_cam: ``(3, 4)`` LiDAR → reference camera 0.
        Tr_imu_to_velo: ``(3, 4)`` IMU → LiDAR, or ``None`` when the file has none.
    """

    P0: np.ndarray
    P1: np.ndarray
    P2: np.ndarray
    P3: np.ndarray
    R0_rect: np.ndarray
    Tr_velo_to_cam: np.ndarray
    Tr_imu_to_velo: np.ndarray | None = None

    # ------------------------------------------------------------------ parsing
    @classmethod
    def from_file(cls, path: str | Path) -> Calibration:
        """Parse a calib ``.txt``; ``ValueError`` names the file (and line) on bad input."""
        return cls.from_text(read_text(path, "calib"), source=str(path))

    @classmethod
    def from_text(cls, text: str, source: str = "<calib>") -> Calibration:
        """Parse ``key: v1 v2 ...`` lines.

        Missing required keys, malformed or non-finite values, a singular ``R0_rect ·
        Tr_velo_to_cam`` (points could not be mapped back to LiDAR) or a ``P2`` without a focal
        length raise ``ValueError`` naming ``source``.
        """
        shapes = {**REQUIRED_KEYS, **OPTIONAL_KEYS}
        mats: dict[str, np.ndarray] = {}
        for lineno, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            key, sep, values = line.partition(":")
            key = key.strip()
            if not sep:
                raise ValueError(f"{source}:{lineno}: expected 'key: values', got {line.strip()[:60]!r}")
            if key not in shapes:
                continue  # unknown keys (e.g. R_rect of other KITTI benchmarks) are ignored
            try:
                vals = np.array([float(v) for v in values.split()], dtype=np.float64)
            except ValueError as e:
                raise ValueError(f"{source}:{lineno}: {key}: non-numeric value ({e})") from e
            shape = shapes[key]
            if vals.size != shape[0] * shape[1]:
                n = shape[0] * shape[1]
                raise ValueError(f"{source}:{lineno}: {key}: expected {n} values, got {vals.size}")
            if not np.isfinite(vals).all():
                raise ValueError(f"{source}:{lineno}: {key}: non-finite value")
            mats[key] = vals.reshape(shape)
        missing = [k for k in REQUIRED_KEYS if k not in mats]
        if missing:
            raise ValueError(f"{source}: missing calib key(s) {missing}; expected {list(REQUIRED_KEYS)}")
        calib = cls(**mats)
        calib.check(source)
        return calib

    def check(self, source: str = "<calib>") -> None:
        """``ValueError`` naming ``source`` when the transforms cannot be used (see :meth:`from_text`)."""
        for key, m in (("R0_rect", self.R0_rect), ("R0_rect · Tr_velo_to_cam", self.lidar_to_rect_matrix)):
            sv = np.linalg.svd(m[:3, :3], compute_uv=False)
            if not sv[-1] > 1e-9 * max(sv[0], 1e-300):
                raise ValueError(f"{source}: {key} is singular (its 3x3 part has rank < 3)")
        if not (abs(self.P2[0, 0]) > 1e-9 and abs(self.P2[1, 1]) > 1e-9):
            raise ValueError(
                f"{source}: P2 has a zero focal length (P2[0,0]={self.P2[0, 0]}, P2[1,1]={self.P2[1, 1]})"
            )

    @classmethod
    def from_dict(cls, d: dict) -> Calibration:
        """Inverse of :meth:`to_dict` (nested lists or arrays)."""
        kw = {k: np.asarray(d[k], dtype=np.float64).reshape(s) for k, s in REQUIRED_KEYS.items()}
        if d.get("Tr_imu_to_velo") is not None:
            kw["Tr_imu_to_velo"] = np.asarray(d["Tr_imu_to_velo"], dtype=np.float64).reshape(3, 4)
        return cls(**kw)

    def to_dict(self) -> dict[str, list]:
        """JSON-serialisable matrices (nested lists)."""
        d = {k: getattr(self, k).tolist() for k in REQUIRED_KEYS}
        d["Tr_imu_to_velo"] = None if self.Tr_imu_to_velo is None else self.Tr_imu_to_velo.tolist()
        return d

    # --------------------------------------------------------------- transforms
    @property
    def lidar_to_rect_matrix(self) -> np.ndarray:
        """``(4, 4)`` homogeneous LiDAR → rectified camera: ``R0_ext · Tr_ext``."""
        return _pad4(self.R0_rect) @ _pad4(self.Tr_velo_to_cam)

    @property
    def rect_to_lidar_matrix(self) -> np.ndarray:
        """``(4, 4)`` inverse of :attr:`lidar_to_rect_matrix`."""
        return np.linalg.inv(self.lidar_to_rect_matrix)

    def lidar_to_rect(self, pts: np.ndarray) -> np.ndarray:
        """``(N, 3)`` LiDAR points → ``(N, 3)`` rectified camera points (float64)."""
        return _affine(pts, self.lidar_to_rect_matrix)

    def rect_to_lidar(self, pts: np.ndarray) -> np.ndarray:
        """``(N, 3)`` rectified camera points → ``(N, 3)`` LiDAR points (float64)."""
        return _affine(pts, self.rect_to_lidar_matrix)

    def rect_to_img(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(N, 3)`` rect points → ``(uv (N, 2), depth (N,))`` in image 2 (depth = projected w)."""
        proj = _affine(pts, self.P2)
        depth = proj[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            uv = proj[:, :2] / depth[:, None]
        return uv, depth

    def lidar_to_img(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(N, 3)`` LiDAR points → ``(uv (N, 2), depth (N,))`` in image 2."""
        return self.rect_to_img(self.lidar_to_rect(pts))

    def img_to_rect(self, u: np.ndarray, v: np.ndarray, depth_rect: np.ndarray) -> np.ndarray:
        """Back-project pixels with rect depth ``z`` to ``(N, 3)`` rect points (inverse of rect_to_img)."""
        fu, fv, cu, cv = self.P2[0, 0], self.P2[1, 1], self.P2[0, 2], self.P2[1, 2]
        tx, ty = self.P2[0, 3] / -fu, self.P2[1, 3] / -fv
        z = np.asarray(depth_rect, dtype=np.float64)
        x = (np.asarray(u, dtype=np.float64) - cu) * z / fu + tx
        y = (np.asarray(v, dtype=np.float64) - cv) * z / fv + ty
        return np.stack([x, y, z], axis=-1)


def fov_mask(calib: Calibration, pts_lidar: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
    """``(N,)`` bool: points projecting into image 2 (``0 ≤ u < W``, ``0 ≤ v < H``) with positive depth.

    ``image_size`` is ``(W, H)`` (OpenPCDet ``FOV_POINTS_ONLY`` semantics; rect z > 0 and projected depth > 0).
    """
    w, h = image_size
    pts = np.ascontiguousarray(np.asarray(pts_lidar).reshape(-1, 3))
    return _fov_kernel(pts, calib.lidar_to_rect_matrix, calib.P2, float(w), float(h))
