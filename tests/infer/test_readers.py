"""Every reader on the real sample scans written by Open3D, laspy and numpy; bad files."""

from __future__ import annotations

import numpy as np
import pytest

from pc3d.infer import InputError, read_cloud
from pc3d.infer.readers import columns_to_cloud, normalise_intensity
from tests.infer.scans import scannet_arrays, write_las, write_open3d, write_scannet_formats

pytestmark = pytest.mark.samples

# binary formats keep float32 exactly; LAS stores 0.1 mm integers; text 1 um decimals; ascii ply/pcd 6 digits
COORD_TOL = {
    "las": 1e-4,
    "laz": 1e-4,
    "xyz": 1e-5,
    "txt": 1e-5,
    "ply_ascii_no_normals": 2e-5,
    "pcd_ascii": 2e-5,
    "pts": 1e-6,
}
WITH_NORMALS = {"ply_binary", "pcd_binary", "npy", "npz", "txt"}


@pytest.fixture(scope="module")
def scene(samples_dir, scannet_data):
    return scannet_arrays(samples_dir, scannet_data)


@pytest.fixture(scope="module")
def formats(scene, tmp_path_factory):
    return write_scannet_formats(tmp_path_factory.mktemp("formats"), scene)


@pytest.mark.parametrize(
    "name",
    [
        "ply_binary",
        "ply_ascii_no_normals",
        "pcd_binary",
        "pcd_ascii",
        "las",
        "laz",
        "npy",
        "npz",
        "xyz",
        "txt",
        "pts",
    ],
)
def test_every_format_reads_back_points_colours_and_normals(formats, scene, name):
    cloud = read_cloud(formats[name])
    assert cloud.num_points == len(scene["coord"]) and cloud.dropped == 0
    np.testing.assert_allclose(cloud.coord, scene["coord"], atol=COORD_TOL.get(name, 1e-6))
    np.testing.assert_array_equal(cloud.color, scene["color"])
    if name in WITH_NORMALS:
        np.testing.assert_allclose(cloud.normal, scene["normal"], atol=1e-5)
    else:
        assert cloud.normal is None


@pytest.fixture(scope="module")
def sweep(samples_dir):
    return np.fromfile(
        samples_dir / "kitti" / "training" / "velodyne" / "000001.bin", dtype=np.float32
    ).reshape(-1, 4)


@pytest.mark.parametrize("suffix", [".pcd", ".ply", ".las", ".npy", ".npz", ".txt"])
def test_lidar_reflectance_survives(sweep, tmp_path, suffix):
    path = tmp_path / f"sweep{suffix}"
    if suffix in (".pcd", ".ply"):
        write_open3d(path, sweep[:, :3], intensity=sweep[:, 3])
    elif suffix == ".las":
        write_las(path, sweep[:, :3].astype(np.float64), intensity=sweep[:, 3])
    elif suffix == ".npy":
        np.save(path, sweep)
    elif suffix == ".npz":
        np.savez(path, points=sweep)
    else:
        np.savetxt(path, sweep, fmt="%.6f")
    cloud = read_cloud(path)
    np.testing.assert_allclose(cloud.coord, sweep[:, :3], atol=1e-4)
    np.testing.assert_allclose(cloud.intensity, sweep[:, 3], atol=2e-5)


def test_kitti_bin(samples_dir, sweep):
    cloud = read_cloud(samples_dir / "kitti" / "training" / "velodyne" / "000001.bin")
    np.testing.assert_array_equal(cloud.coord, sweep[:, :3])
    np.testing.assert_array_equal(cloud.intensity, sweep[:, 3])


def test_nan_rows_are_dropped_with_a_warning_and_remembered(tmp_path):
    pts = np.random.default_rng(0).random((50, 3)).astype(np.float32)
    pts[[3, 17]] = np.nan
    pts[20, 1] = np.inf
    np.save(tmp_path / "nan.npy", pts)
    with pytest.warns(UserWarning, match="dropped 3 of 50 points"):
        cloud = read_cloud(tmp_path / "nan.npy")
    assert cloud.num_points == 47 and cloud.num_rows == 50 and cloud.dropped == 3
    full = cloud.to_rows(np.arange(47), -1)
    assert full.shape == (50,) and (full[[3, 17, 20]] == -1).all() and full[4] == 3


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.ply", b"", "the file is empty"),
        ("empty.bin", b"", "the file is empty"),
        ("short.bin", b"\0" * 20, "not a multiple of 16"),
        ("words.txt", b"hello world\nfoo bar\n", "cannot read it as .txt"),
        ("five.txt", b"1 2 3 4 5\n6 7 8 9 10\n", "5 columns; give --columns"),
        ("garbage.pcd", b"not a pcd file at all\n", "garbage.pcd"),
        ("garbage.las", b"LASF but not really", "garbage.las"),
        ("scan.obj", b"v 1 2 3\n", "unsupported file type '.obj'"),
    ],
)
def test_bad_files_are_one_clear_error_naming_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError, match=message) as info:
        read_cloud(path)
    assert str(path) in str(info.value) or "--columns" in str(info.value)
    assert "\n" not in str(info.value)


def test_all_nan_and_missing_npz_key(tmp_path):
    np.save(tmp_path / "nan.npy", np.full((4, 3), np.nan))
    with pytest.raises(InputError, match="all 4 points have NaN"):
        read_cloud(tmp_path / "nan.npy")
    np.savez(tmp_path / "other.npz", weights=np.zeros(3))
    with pytest.raises(InputError, match="no point array; expected one of"):
        read_cloud(tmp_path / "other.npz")


def test_columns_option():
    arr = np.array([[0.5, 1, 2, 3, 10, 20, 30]], dtype=np.float64)
    cloud = columns_to_cloud(arr, "i,x,y,z,r,g,b", "a")
    np.testing.assert_array_equal(cloud.coord, [[1, 2, 3]])
    np.testing.assert_array_equal(cloud.color, [[10, 20, 30]])
    assert cloud.intensity[0] == pytest.approx(0.5)
    with pytest.raises(InputError, match="names 3 columns but the data has 7"):
        columns_to_cloud(arr, "x,y,z", "a")
    with pytest.raises(InputError, match="unknown names"):
        columns_to_cloud(arr, "x,y,z,w,r,g,b", "a")
    with pytest.raises(InputError, match="give all of r, g, b"):
        columns_to_cloud(arr, "x,y,z,r,_,_,_", "a")


def test_normalise_intensity():
    np.testing.assert_allclose(normalise_intensity(np.array([0.0, 0.5, 1.0])), [0, 0.5, 1])
    np.testing.assert_allclose(normalise_intensity(np.array([0, 255], np.uint8)), [0, 1])
    np.testing.assert_allclose(normalise_intensity(np.array([0, 65535], np.uint16)), [0, 1])
    np.testing.assert_allclose(normalise_intensity(np.array([0.0, 2.5, 5.0])), [0, 0.5, 1])
