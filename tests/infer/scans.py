"""The real sample scans converted into every supported format with the formats' own libraries."""

from __future__ import annotations

from pathlib import Path

import numpy as np

SCENE = "scene0000_00"


def scannet_arrays(samples_dir: Path, scannet_data: Path) -> dict[str, np.ndarray]:
    """coord (N, 3) float32, color (N, 3) uint8 and normal (N, 3) float32 of scene0000_00: the raw
    mesh's vertices read by Open3D, with the preprocessed (mesh) normals."""
    import open3d as o3d

    from pc3d.data.scannet.preprocess import load_scene

    mesh = o3d.io.read_triangle_mesh(
        str(samples_dir / "scannet" / "scans" / SCENE / f"{SCENE}_vh_clean_2.ply")
    )
    coord = np.asarray(mesh.vertices, dtype=np.float32)
    color = np.round(np.asarray(mesh.vertex_colors) * 255).astype(np.uint8)
    normal = load_scene(scannet_data / "scans" / SCENE, ("normal",))["normal"]
    return {"coord": coord, "color": color, "normal": normal.astype(np.float32)}


def write_open3d(path: Path, coord, color=None, normal=None, intensity=None, ascii: bool = False) -> Path:
    import open3d as o3d

    pcd = o3d.t.geometry.PointCloud()
    pcd.point.positions = o3d.core.Tensor(np.ascontiguousarray(coord, dtype=np.float32))
    if color is not None:
        pcd.point.colors = o3d.core.Tensor(np.ascontiguousarray(color, dtype=np.uint8))
    if normal is not None:
        pcd.point.normals = o3d.core.Tensor(np.ascontiguousarray(normal, dtype=np.float32))
    if intensity is not None:
        pcd.point.intensity = o3d.core.Tensor(np.ascontiguousarray(intensity, dtype=np.float32)[:, None])
    assert o3d.t.io.write_point_cloud(str(path), pcd, write_ascii=ascii)
    return path


def write_las(path: Path, coord, color=None, intensity=None) -> Path:
    import laspy

    header = laspy.LasHeader(point_format=3 if color is not None else 1, version="1.2")
    header.offsets = np.floor(coord.min(0))
    header.scales = np.array([0.0001, 0.0001, 0.0001])
    las = laspy.LasData(header)
    las.x, las.y, las.z = coord[:, 0], coord[:, 1], coord[:, 2]
    if color is not None:
        c16 = color.astype(np.uint16) * 257  # 8-bit -> 16-bit LAS colours
        las.red, las.green, las.blue = c16[:, 0], c16[:, 1], c16[:, 2]
    if intensity is not None:
        las.intensity = np.round(np.clip(intensity, 0, 1) * 65535).astype(np.uint16)
    las.write(str(path))
    return path


def write_scannet_formats(folder: Path, a: dict[str, np.ndarray]) -> dict[str, Path]:
    """scene0000_00 as every format; returns name -> path. Every file holds colours."""
    import open3d as o3d

    folder.mkdir(parents=True, exist_ok=True)
    c, rgb, n = a["coord"], a["color"], a["normal"]
    out = {
        "ply_binary": write_open3d(folder / "binary.ply", c, rgb, n),
        "ply_ascii_no_normals": write_open3d(folder / "ascii.ply", c, rgb, ascii=True),
        "pcd_binary": write_open3d(folder / "binary.pcd", c, rgb, n),
        "pcd_ascii": write_open3d(folder / "ascii.pcd", c, rgb, ascii=True),
        "las": write_las(folder / "scan.las", c.astype(np.float64), rgb),
        "laz": write_las(folder / "scan.laz", c.astype(np.float64), rgb),
    }
    legacy = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(c.astype(np.float64)))
    legacy.colors = o3d.utility.Vector3dVector(rgb / 255.0)
    assert o3d.io.write_point_cloud(str(folder / "scan.pts"), legacy)
    out["pts"] = folder / "scan.pts"
    np.save(folder / "cols9.npy", np.concatenate([c, rgb.astype(np.float32), n], 1))
    out["npy"] = folder / "cols9.npy"
    np.savez(folder / "arrays.npz", coord=c, color=rgb, normal=n)
    out["npz"] = folder / "arrays.npz"
    np.savetxt(folder / "cols6.xyz", np.concatenate([c, rgb], 1), fmt=["%.6f"] * 3 + ["%d"] * 3)
    out["xyz"] = folder / "cols6.xyz"
    np.savetxt(folder / "cols9.txt", np.concatenate([c, rgb, n], 1), fmt="%.6f", delimiter=",",
               header="x,y,z,r,g,b,nx,ny,nz")  # fmt: skip
    out["txt"] = folder / "cols9.txt"
    return out
