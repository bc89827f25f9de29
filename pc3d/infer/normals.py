"""Normal estimation for scans that come without normals (Open3D)."""

from __future__ import annotations

import numpy as np


def estimate_normals(coord: np.ndarray, radius: float, max_nn: int = 30) -> np.ndarray:
    """Unit normals ``(N, 3)`` float32 of ``coord (N, 3)`` from local planes (Open3D hybrid search:
    at most ``max_nn`` neighbours within ``radius`` metres).

    Orientation: towards the centre of the scan's bounding box, as for an indoor scan taken from
    inside the room (walls face the room, floors face up); a point without neighbours gets ``+z``.
    """
    import open3d as o3d

    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(coord, dtype=np.float64)))
    pcd.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=float(radius), max_nn=int(max_nn)))
    lo, hi = np.asarray(coord).min(0), np.asarray(coord).max(0)
    pcd.orient_normals_towards_camera_location((lo + hi) / 2.0)
    normals = np.asarray(pcd.normals, dtype=np.float32)
    length = np.linalg.norm(normals, axis=1)
    bad = ~np.isfinite(length) | (length < 1e-6)
    normals[bad] = (0.0, 0.0, 1.0)
    return normals
