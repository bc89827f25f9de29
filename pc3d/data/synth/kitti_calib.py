"""KITTI calibration used by the synthetic street frames: the real values of KITTI object frame 000001.

Transforms follow OpenPCDet's ``calibration_kitti.py``: ``x_rect = R0 @ Tr_velo_to_cam @ [x_velo; 1]`` and
``[u w, v w, w] = P2 @ [x_rect; 1]``.
"""

from __future__ import annotations

import numpy as np

IMAGE_WIDTH, IMAGE_HEIGHT = 1242, 375

CALIB: dict[str, np.ndarray] = {
    "P0": np.array([7.215377e02, 0.0, 6.095593e02, 0.0, 0.0, 7.215377e02, 1.728540e02, 0.0, 0.0, 0.0, 1.0, 0.0]),
    "P1": np.array([7.215377e02, 0.0, 6.095593e02, -3.875744e02, 0.0, 7.215377e02, 1.728540e02, 0.0, 0.0, 0.0, 1.0, 0.0]),
    "P2": np.array([7.215377e02, 0.0, 6.095593e02, 4.485728e01, 0.0, 7.215377e02, 1.728540e02, 2.163791e-01, 0.0, 0.0, 1.0, 2.745884e-03]),
    "P3": np.array([7.215377e02, 0.0, 6.095593e02, -3.395242e02, 0.0, 7.215377e02, 1.728540e02, 2.199936e00, 0.0, 0.0, 1.0, 2.729905e-03]),
    "R0_rect": np.array([9.999239e-01, 9.837760e-03, -7.445048e-03, -9.869795e-03, 9.999421e-01, -4.278459e-03, 7.402527e-03, 4.351614e-03, 9.999631e-01]),
    "Tr_velo_to_cam": np.array([7.533745e-03, -9.999714e-01, -6.166020e-04, -4.069766e-03, 1.480249e-02, 7.280733e-04, -9.998902e-01, -7.631618e-02, 9.998621e-01, 7.523790e-03, 1.480755e-02, -2.717806e-01]),
    "Tr_imu_to_velo": np.array([9.999976e-01, 7.553071e-04, -2.035826e-03, -8.086759e-01, -7.854027e-04, 9.998898e-01, -1.482298e-02, 3.195559e-01, 2.024406e-03, 1.482454e-02, 9.998881e-01, -7.997231e-01]),
}  # fmt: skip

P2 = CALIB["P2"].reshape(3, 4)
_R0 = np.eye(4)
_R0[:3, :3] = CALIB["R0_rect"].reshape(3, 3)
_TR = np.eye(4)
_TR[:3] = CALIB["Tr_velo_to_cam"].reshape(3, 4)
VELO_TO_RECT = _R0 @ _TR  # (4, 4)
RECT_TO_VELO = np.linalg.inv(VELO_TO_RECT)


def calib_text() -> str:
    """The calib file text, formatted like KITTI's (``%.12e``, trailing blank line)."""
    keys = ("P0", "P1", "P2", "P3", "R0_rect", "Tr_velo_to_cam", "Tr_imu_to_velo")
    return "".join(f"{k}: " + " ".join(f"{v:.12e}" for v in CALIB[k]) + "\n" for k in keys) + "\n"


def velo_to_rect(p: np.ndarray) -> np.ndarray:
    """``(N, 3)`` velodyne points -> ``(N, 3)`` rectified camera coordinates."""
    return p @ VELO_TO_RECT[:3, :3].T + VELO_TO_RECT[:3, 3]


def rect_to_velo(p: np.ndarray) -> np.ndarray:
    """``(N, 3)`` rectified camera coordinates -> ``(N, 3)`` velodyne points."""
    return p @ RECT_TO_VELO[:3, :3].T + RECT_TO_VELO[:3, 3]


def rect_to_image(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project ``(N, 3)`` rect points with P2: returns ``uv (N, 2)`` and depth ``(N,)``."""
    h = p @ P2[:, :3].T + P2[:, 3]
    depth = h[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = h[:, :2] / depth[:, None]
    return uv, depth - P2[2, 3]


def camera2_center_velo() -> np.ndarray:
    """Optical centre of camera 2 in the velodyne frame ``(3,)``."""
    k = P2[:, :3]
    c_rect = -np.linalg.solve(k, P2[:, 3])
    return rect_to_velo(c_rect[None])[0]


_PIX_TO_VELO = RECT_TO_VELO[:3, :3] @ np.linalg.inv(P2[:, :3])  # (3, 3): [u, v, 1] -> velodyne direction


def pixel_rays_velo(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Unit directions ``(N, 3)`` in the velodyne frame of camera-2 rays through pixels ``(u, v)``."""
    m = _PIX_TO_VELO
    d = np.stack([m[i, 0] * u + m[i, 1] * v + m[i, 2] for i in range(3)], -1)
    return d / np.sqrt((d * d).sum(-1, keepdims=True))
