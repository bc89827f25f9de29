"""Point-cloud transforms: invariants, Pointcept/mmdet3d semantics, determinism, bad input."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.interpolate import RegularGridInterpolator
from scipy.ndimage import convolve
from scipy.spatial.distance import pdist

from pc3d.data.scannet.pipelines import SegAugParams, seg_train_pipeline
from pc3d.data.transforms import (
    CenterShift,
    ChromaticAutoContrast,
    ChromaticJitter,
    ChromaticTranslation,
    ElasticDistortion,
    GridSample,
    HeightFeature,
    NormalizeColor,
    PointSample,
    RandomDropout,
    RandomFlip,
    RandomJitter,
    RandomRotate,
    RandomScale,
    SphereCrop,
    VoteTargets,
    index_points,
)
from pc3d.data.transforms._elastic import blur_noise, trilinear_add
from pc3d.data.transforms.base import affine, bounds, rotate_about


def _cloud(n: int = 2000, seed: int = 0) -> dict:
    r = np.random.default_rng(seed)
    coord = (r.random((n, 3)) * [4.0, 3.0, 2.5]).astype(np.float32)
    normal = r.normal(size=(n, 3)).astype(np.float32)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    return {
        "coord": coord,
        "color": r.integers(0, 256, (n, 3)).astype(np.float32),
        "normal": normal,
        "segment": r.integers(-1, 20, n).astype(np.int64),
        "boxes": np.array([[1.0, 1.0, 1.0, 0.5, 0.8, 1.0, 0.0]], np.float32),
        "box_labels": np.array([3]),
    }


def test_bounds_matches_numpy():
    c = _cloud()["coord"]
    lo, hi = bounds(c)
    np.testing.assert_array_equal(lo, c.min(0))
    np.testing.assert_array_equal(hi, c.max(0))
    with pytest.raises(ValueError, match="coord"):
        bounds(np.zeros((0, 3)))


def test_affine_matches_matmul():
    r = np.random.default_rng(1)
    p = r.random((100, 3)).astype(np.float32)
    m = r.normal(size=(3, 3))
    a, b = r.normal(size=3), r.normal(size=3)
    out = affine(p, m, a, b)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, (p - a) @ m.T + b, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(rotate_about(p, m, a), (p - a) @ m.T + a, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("axis", ["x", "y", "z"])
def test_rotation_preserves_distances_and_rotates_normals(axis):
    d = _cloud(300)
    out = RandomRotate((-1, 1), axis=axis, p=1.0)(
        {k: v.copy() for k, v in d.items() if k != "boxes"}, np.random.default_rng(1)
    )
    np.testing.assert_allclose(pdist(out["coord"]), pdist(d["coord"]), atol=1e-5)
    assert not np.allclose(out["coord"], d["coord"])
    np.testing.assert_allclose(np.linalg.norm(out["normal"], axis=1), 1.0, atol=1e-5)
    # normals rotate with the points: the angle between a normal and a point offset is preserved
    dots_in = np.einsum("ij,ij->i", d["normal"][1:], d["coord"][1:] - d["coord"][0])
    dots_out = np.einsum("ij,ij->i", out["normal"][1:], out["coord"][1:] - out["coord"][0])
    np.testing.assert_allclose(dots_out, dots_in, atol=1e-4)


def test_rotate_z_boxes_enclose_rotated_box_points():
    d = _cloud(3000)
    b = d["boxes"][0]
    inside = np.all(np.abs(d["coord"] - b[:3]) <= b[3:6] / 2, axis=1)
    assert inside.sum() > 20
    out = RandomRotate((0.1, 0.1), axis="z", center=(0, 0, 0), p=1.0)(d, np.random.default_rng(0))
    nb = out["boxes"][0]
    assert nb[6] == 0.0
    pts = out["coord"][inside]
    assert np.all(np.abs(pts - nb[:3]) <= nb[3:6] / 2 + 1e-5)
    # enclosing box of a box rotated by 18 degrees is strictly larger in x and y
    assert nb[3] > b[3] and nb[4] > b[4] and np.isclose(nb[5], b[5])
    with pytest.raises(ValueError, match="about z"):
        RandomRotate(axis="x", p=1.0)(_cloud(), np.random.default_rng(0))


def test_rotate_probability_and_bad_args():
    d = _cloud()
    out = RandomRotate(p=0.0)({k: v.copy() for k, v in d.items()}, np.random.default_rng(0))
    np.testing.assert_array_equal(out["coord"], d["coord"])
    with pytest.raises(ValueError, match="axis"):
        RandomRotate(axis="w")
    with pytest.raises(ValueError, match="probability"):
        RandomRotate(p=1.5)
    with pytest.raises(ValueError, match="range"):
        RandomScale((1.1, 0.9))


def test_center_shift():
    d = CenterShift(apply_z=True)(_cloud(), np.random.default_rng(0))
    lo, hi = d["coord"].min(0), d["coord"].max(0)
    np.testing.assert_allclose((lo[:2] + hi[:2]) / 2, 0, atol=1e-6)
    assert abs(lo[2]) < 1e-6
    d2 = CenterShift(apply_z=False)({"coord": d["coord"] + 5}, np.random.default_rng(0))
    assert abs(d2["coord"][:, 2].min() - 5) < 1e-5


def test_flip_scale_jitter():
    d = _cloud()
    rng = np.random.default_rng(0)
    f = RandomFlip(p=1.0)({k: v.copy() for k, v in d.items()}, rng)
    np.testing.assert_array_equal(f["coord"][:, :2], -d["coord"][:, :2])
    np.testing.assert_array_equal(f["coord"][:, 2], d["coord"][:, 2])
    np.testing.assert_array_equal(f["normal"][:, :2], -d["normal"][:, :2])
    np.testing.assert_array_equal(f["boxes"][0, :2], -d["boxes"][0, :2])
    s = RandomScale((2.0, 2.0))({k: v.copy() for k, v in d.items()}, rng)
    np.testing.assert_allclose(s["coord"], 2 * d["coord"], rtol=1e-6)
    np.testing.assert_allclose(s["boxes"][0, 3:6], 2 * d["boxes"][0, 3:6])
    j = RandomJitter(0.01, 0.02)({"coord": d["coord"].copy()}, rng)
    delta = j["coord"] - d["coord"]
    assert np.abs(delta).max() <= 0.02 + 1e-6 and 0.005 < delta.std() < 0.012


def test_elastic_kernels_match_scipy():
    r = np.random.default_rng(3)
    noise = r.standard_normal((7, 6, 5, 3)).astype(np.float32)
    ref = noise.copy()
    for _ in range(2):
        for k in ((3, 1, 1, 1), (1, 3, 1, 1), (1, 1, 3, 1)):
            ref = convolve(ref, np.ones(k, np.float32) / 3, mode="constant", cval=0)
    blurred = blur_noise(noise)
    np.testing.assert_allclose(blurred, ref, atol=1e-5)
    origin, step = np.array([-0.2, -0.2, -0.2]), 0.2
    axes = [origin[i] + step * np.arange(blurred.shape[i]) for i in range(3)]
    pts = (r.random((500, 3)) * [1.0, 0.8, 0.6]).astype(np.float32)
    interp = RegularGridInterpolator(axes, blurred, bounds_error=False, fill_value=0)
    expect = pts + interp(pts) * 0.4
    got = pts.copy()
    trilinear_add(got, blurred, origin, step, 0.4)
    np.testing.assert_allclose(got, expect, atol=1e-5)


def test_elastic_distortion_moves_points_smoothly():
    d = _cloud(3000)
    out = ElasticDistortion(((0.2, 0.4), (0.8, 1.6)), p=1.0)(
        {"coord": d["coord"].copy()}, np.random.default_rng(0)
    )
    delta = out["coord"] - d["coord"]
    assert np.abs(delta).max() > 0.01
    # smooth field: close points move alike
    i, j = 0, np.argsort(((d["coord"] - d["coord"][0]) ** 2).sum(1))[1]
    assert np.linalg.norm(delta[i] - delta[j]) < np.abs(delta).max()


def test_color_transforms():
    d = _cloud()
    rng = np.random.default_rng(0)
    c = ChromaticAutoContrast(p=1.0, blend_factor=1.0)({"color": d["color"] * 0.5 + 10}, rng)["color"]
    np.testing.assert_allclose(c.min(0), 0, atol=1e-3)
    np.testing.assert_allclose(c.max(0), 255, atol=1e-3)
    t = ChromaticTranslation(p=1.0, ratio=0.05)({"color": d["color"].copy()}, rng)["color"]
    assert t.min() >= 0 and t.max() <= 255
    diff = (t - d["color"])[(d["color"] > 20).all(1) & (d["color"] < 230).all(1)]
    assert np.allclose(diff, diff[0], atol=1e-3) and np.abs(diff[0]).max() <= 0.05 * 255
    j = ChromaticJitter(p=1.0, std=0.05)({"color": d["color"].copy()}, rng)["color"]
    assert j.min() >= 0 and j.max() <= 255 and 5 < np.std(j - d["color"]) < 14
    n = NormalizeColor()({"color": np.array([[0.0, 127.5, 255.0]])}, rng)["color"]
    np.testing.assert_allclose(n, [[-1, 0, 1]])


def test_dropout_pointsample_spherecrop():
    d = _cloud(1000)
    rng = np.random.default_rng(0)
    out = RandomDropout(0.2, p=1.0)({k: v.copy() for k, v in d.items()}, rng)
    assert out["coord"].shape[0] == 800 and out["segment"].shape[0] == 800
    assert out["boxes"].shape == (1, 7)  # per-scene keys untouched
    ps = PointSample(600)({k: v.copy() for k, v in d.items()}, rng)
    assert ps["coord"].shape[0] == 600 and len(np.unique(ps["coord"], axis=0)) == 600
    up = PointSample(1500)({k: v.copy() for k, v in d.items()}, rng)
    assert up["coord"].shape[0] == 1500
    sc = SphereCrop(100, mode="center")({k: v.copy() for k, v in d.items()}, rng)
    assert sc["coord"].shape[0] == 100
    center = (d["coord"].min(0) + d["coord"].max(0)) / 2
    dist_all = np.sort(np.linalg.norm(d["coord"] - center, axis=1))
    assert np.linalg.norm(sc["coord"] - center, axis=1).max() <= dist_all[99] + 1e-6
    with pytest.raises(ValueError, match="dropout_ratio"):
        RandomDropout(1.0)


def test_index_points_skips_scene_keys():
    d = _cloud(1)  # one point and one box: boxes must not be treated as per-point
    d["boxes"] = np.zeros((1, 7), np.float32)
    out = index_points(dict(d), np.array([0, 0]))
    assert out["coord"].shape[0] == 2 and out["boxes"].shape[0] == 1


def test_grid_sample_train_one_point_per_voxel():
    d = _cloud(5000)
    out = GridSample(0.1, mode="train", return_inverse=True)(
        {k: v.copy() for k, v in d.items()}, np.random.default_rng(0)
    )
    g = out["grid_coord"]
    assert g.dtype == np.int32 and g.min() >= 0
    assert len(np.unique(g, axis=0)) == len(g)
    expect = np.floor(out["coord"].astype(np.float64) / 0.1) - np.floor(
        d["coord"].astype(np.float64) / 0.1
    ).min(0)
    np.testing.assert_array_equal(g, expect)
    inv = out["inverse"]
    assert inv.shape == (5000,)
    # every original point maps to the kept point of its own voxel
    orig_g = np.floor(d["coord"].astype(np.float64) / 0.1) - np.floor(
        d["coord"].astype(np.float64) / 0.1
    ).min(0)
    np.testing.assert_array_equal(g[inv], orig_g)


def test_grid_sample_test_fragments_cover_every_point():
    d = _cloud(3000)
    d["coord"] = np.round(d["coord"] * 10) / 10 + np.float32(0.01)  # many duplicates per voxel
    frags = GridSample(0.2, mode="test").fragments({k: v.copy() for k, v in d.items()})
    assert len(frags) > 1
    n = d["coord"].shape[0]
    allidx = np.concatenate([f["index"] for f in frags])
    assert np.array_equal(np.unique(allidx), np.arange(n))  # the union covers every original point
    # voxel of every point, computed independently of GridSample
    c64 = d["coord"].astype(np.float64)
    vox = np.floor(c64 / 0.2) - np.floor(c64 / 0.2).min(0)
    _, vid = np.unique(vox, axis=0, return_inverse=True)
    vid = vid.reshape(-1)
    n_vox = vid.max() + 1
    assert n_vox < n  # duplicates exist, so more than one fragment is needed
    assert len(frags) == np.bincount(vid).max()  # as many fragments as points in the fullest voxel
    for f in frags:
        # exactly one point of every occupied voxel
        assert np.array_equal(np.sort(vid[f["index"]]), np.arange(n_vox))
        np.testing.assert_array_equal(f["grid_coord"], vox[f["index"]])
        np.testing.assert_array_equal(f["coord"], d["coord"][f["index"]])
        np.testing.assert_array_equal(f["segment"], d["segment"][f["index"]])


def test_seg_pipeline_deterministic_under_seed():
    d = {k: v for k, v in _cloud(4000).items() if not k.startswith("box")}
    pipe = seg_train_pipeline(SegAugParams(sphere_crop_points=1500))

    def run(seed):
        return pipe({k: v.copy() for k, v in d.items()}, np.random.default_rng(seed))

    a, b, c = run(5), run(5), run(6)
    for k in ("coord", "color", "normal", "segment", "grid_coord"):
        np.testing.assert_array_equal(a[k], b[k])
    assert a["coord"].shape != c["coord"].shape or not np.array_equal(a["coord"], c["coord"])
    assert a["coord"].shape[0] <= 1500 and a["color"].min() >= -1 and a["color"].max() <= 1


def test_height_and_vote_targets():
    r = np.random.default_rng(0)
    coord = r.random((400, 3)).astype(np.float32)
    instance = np.repeat(np.arange(4), 100)
    instance[:10] = -1
    det_class = np.repeat([2, -1, 5, 0], 100)
    d = {"coord": coord, "instance": instance, "det_class": det_class}
    h = HeightFeature()(dict(d), r)["height"]
    assert np.isclose(h.min(), coord[:, 2].min() - np.percentile(coord[:, 2], 0.99), atol=1e-6)
    v = VoteTargets()(dict(d), r)
    assert v["vote_mask"].sum() == 290 and not v["vote_mask"][100:200].any() and not v["vote_mask"][:10].any()
    for i in (0, 2, 3):
        m = (instance == i) & v["vote_mask"]
        pts = coord[instance == i]
        center = (pts.min(0) + pts.max(0)) / 2
        np.testing.assert_allclose(
            coord[m] + v["vote_target"][m], np.broadcast_to(center, (m.sum(), 3)), atol=1e-6
        )
