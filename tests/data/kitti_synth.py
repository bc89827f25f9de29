"""A tiny synthetic KITTI object directory for tests (real calib values of KITTI frame 000001)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

CALIB = """P0: 7.215377e+02 0.0 6.095593e+02 0.0 0.0 7.215377e+02 1.728540e+02 0.0 0.0 0.0 1.0 0.0
P1: 7.215377e+02 0.0 6.095593e+02 -3.875744e+02 0.0 7.215377e+02 1.728540e+02 0.0 0.0 0.0 1.0 0.0
P2: 7.215377e+02 0.0 6.095593e+02 4.485728e+01 0.0 7.215377e+02 1.728540e+02 2.163791e-01 0.0 0.0 1.0 2.745884e-03
P3: 7.215377e+02 0.0 6.095593e+02 -3.395242e+02 0.0 7.215377e+02 1.728540e+02 2.199936e+00 0.0 0.0 1.0 2.729905e-03
R0_rect: 9.999239e-01 9.837760e-03 -7.445048e-03 -9.869795e-03 9.999421e-01 -4.278459e-03 7.402527e-03 4.351614e-03 9.999631e-01
Tr_velo_to_cam: 7.533745e-03 -9.999714e-01 -6.166020e-04 -4.069766e-03 1.480249e-02 7.280733e-04 -9.998902e-01 -7.631618e-02 9.998621e-01 7.523790e-03 1.480755e-02 -2.717806e-01
Tr_imu_to_velo: 9.999976e-01 7.553071e-04 -2.035826e-03 -8.086759e-01 -7.854027e-04 9.998898e-01 -1.482298e-02 3.195559e-01 2.024406e-03 1.482454e-02 9.998881e-01 -7.997231e-01
"""

LABEL = """Car 0.00 0 -1.67 657.39 190.13 700.07 223.39 1.41 1.58 4.36 3.18 2.27 34.38 -1.58
Pedestrian 0.00 0 0.21 423.17 173.67 433.17 224.03 1.60 0.57 0.73 -2.94 1.63 20.40 0.07
DontCare -1 -1 -10 503.89 169.71 590.61 190.13 -1 -1 -1 -1000 -1000 -1000 -10
"""


def png_header(w: int = 1242, h: int = 375) -> bytes:
    """A minimal valid 1-pixel-row-less PNG (IHDR + IEND) declaring ``w × h``."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))  # noqa: E731
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def make_points(seed: int, n: int = 4000) -> np.ndarray:
    """Random ground-ish points in front of the car plus dense clusters inside the two labelled objects."""
    rng = np.random.default_rng(seed)
    pts = np.empty((n, 4), np.float32)
    pts[:, 0] = rng.uniform(1, 60, n)
    pts[:, 1] = rng.uniform(-20, 20, n)
    pts[:, 2] = rng.uniform(-1.7, 0.5, n)
    pts[:, 3] = rng.uniform(0, 1, n)
    # LiDAR centres of the labelled Car / Pedestrian (from LABEL through CALIB), about 1 m clusters
    car = np.array([34.68, -3.15, -1.31])
    ped = np.array([20.69, 2.96, -0.66])
    c1 = car + rng.uniform(-0.5, 0.5, (300, 3)) * [3.0, 1.0, 1.0]
    c2 = ped + rng.uniform(-0.2, 0.2, (80, 3))
    extra = np.concatenate([c1, c2])
    extra = np.concatenate([extra, rng.uniform(0, 1, (len(extra), 1))], 1).astype(np.float32)
    return np.concatenate([pts, extra])


def make_kitti_root(root: Path, ids=("000000", "000001", "000002", "000003")) -> Path:
    """Write ``training/{velodyne,calib,label_2,image_2}`` for ``ids``; returns ``root``."""
    for sub in ("velodyne", "calib", "label_2", "image_2"):
        (root / "training" / sub).mkdir(parents=True, exist_ok=True)
    for k, fid in enumerate(ids):
        make_points(k).tofile(root / "training" / "velodyne" / f"{fid}.bin")
        (root / "training" / "calib" / f"{fid}.txt").write_text(CALIB)
        (root / "training" / "label_2" / f"{fid}.txt").write_text(LABEL)
        (root / "training" / "image_2" / f"{fid}.png").write_bytes(png_header())
    return root
