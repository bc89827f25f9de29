"""Point ops vs brute-force numpy references (grid sampling, voxelization, sampling, neighbours)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pc3d.kernels import points as P


def _offsets(counts):
    return torch.tensor(np.concatenate([[0], np.cumsum(counts)]), dtype=torch.int64)


# ----------------------------------------------------------------------------- voxelize / grid sample
def _voxel_ref(coord: np.ndarray, gs: float, offsets: np.ndarray):
    """Per cloud: voxels in lexicographic (x, y, z) order; grid relative to the cloud min."""
    grids, batch, inverse, counts, members = [], [], np.empty(len(coord), np.int64), [], []
    base = 0
    for b in range(len(offsets) - 1):
        s, e = offsets[b], offsets[b + 1]
        if e == s:
            continue
        g = np.floor(coord[s:e].astype(np.float64) / gs).astype(np.int64)
        uniq, inv, cnt = np.unique(g, axis=0, return_inverse=True, return_counts=True)
        inv = inv.reshape(-1)
        grids.append(uniq - g.min(0))
        batch += [b] * len(uniq)
        inverse[s:e] = inv + base
        counts.append(cnt)
        members += [np.flatnonzero(inv == v) + s for v in range(len(uniq))]
        base += len(uniq)
    grid = np.concatenate(grids) if grids else np.zeros((0, 3), np.int64)
    cnt = np.concatenate(counts) if counts else np.zeros(0, np.int64)
    return grid, np.array(batch, np.int64), inverse, cnt, members


def _cases():
    rng = np.random.default_rng(0)
    rand = (rng.normal(size=(300, 3)) * 0.1).astype(np.float32)
    dup = np.repeat(rng.uniform(-1, 1, size=(20, 3)), 5, axis=0).astype(np.float32)
    rng.shuffle(dup)
    one_voxel = rng.uniform(0.101, 0.119, size=(50, 3)).astype(np.float32)
    boundary = (np.arange(-10, 10)[:, None] * 0.02 * np.ones((1, 3))).astype(np.float32)
    return {
        "random_with_empty_clouds": (rand, [0, 120, 0, 180, 0]),
        "duplicates": (dup, [40, 60]),
        "one_voxel": (one_voxel, [50]),
        "boundaries": (boundary, [20]),
        "all_empty": (np.zeros((0, 3), np.float32), [0, 0]),
    }


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("case", list(_cases()))
def test_voxelize_matches_reference(case, backend):
    coord, counts = _cases()[case]
    offsets = _offsets(counts)
    grid, batch, inverse, cnt = P.voxelize(torch.from_numpy(coord), 0.02, offsets, backend=backend)
    rg, rb, rinv, rc, _ = _voxel_ref(coord, 0.02, offsets.numpy())
    assert grid.dtype == torch.int32 and batch.dtype == inverse.dtype == cnt.dtype == torch.int64
    np.testing.assert_array_equal(grid.numpy(), rg)
    np.testing.assert_array_equal(batch.numpy(), rb)
    np.testing.assert_array_equal(inverse.numpy(), rinv)
    np.testing.assert_array_equal(cnt.numpy(), rc)


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("case", list(_cases()))
def test_grid_sample_train_and_test(case, backend):
    coord, counts = _cases()[case]
    offsets = _offsets(counts)
    n = len(coord)
    _, _, rinv, rc, members = _voxel_ref(coord, 0.02, offsets.numpy())
    gen = torch.Generator().manual_seed(3)
    keep, inverse = P.grid_sample(torch.from_numpy(coord), 0.02, offsets, "train", gen, backend=backend)
    np.testing.assert_array_equal(inverse.numpy(), rinv)
    assert keep.shape == (len(rc),)
    np.testing.assert_array_equal(inverse[keep].numpy(), np.arange(len(rc)))  # one point of every voxel
    frags, inverse = P.grid_sample(torch.from_numpy(coord), 0.02, offsets, "test", backend=backend)
    assert len(frags) == (rc.max() if n else 0)
    seen = []
    for i, f in enumerate(frags):
        expect = np.array([m[i % len(m)] for m in members], dtype=np.int64)
        np.testing.assert_array_equal(f.numpy(), expect)  # Pointcept rule: member i mod count
        seen.append(f.numpy()[rc > i])  # first appearances
    if n:
        np.testing.assert_array_equal(np.sort(np.concatenate(seen)), np.arange(n))  # exactly once
        assert set(np.concatenate([f.numpy() for f in frags]).tolist()) == set(range(n))
    parts, _ = P.grid_sample(torch.from_numpy(coord), 0.02, offsets, "test", repeat=False, backend=backend)
    flat = np.concatenate([p.numpy() for p in parts]) if parts else np.zeros(0, np.int64)
    np.testing.assert_array_equal(np.sort(flat), np.arange(n))


def test_grid_sample_random_choice_is_uniform_and_seeded():
    coord = torch.tensor([[0.001, 0.001, 0.001]] * 4 + [[0.5, 0.5, 0.5]])
    hits = np.zeros(4, np.int64)
    gen = torch.Generator().manual_seed(0)
    for _ in range(400):
        keep, _ = P.grid_sample(coord, 0.1, generator=gen)
        hits[int(keep[0])] += 1
        assert int(keep[1]) == 4
    assert hits.min() > 60, hits  # expected 100 each
    a = P.grid_sample(coord, 0.1, generator=torch.Generator().manual_seed(7))[0]
    b = P.grid_sample(coord, 0.1, generator=torch.Generator().manual_seed(7))[0]
    assert torch.equal(a, b)


def test_grid_sample_numpy_in_numpy_out():
    coord = np.random.default_rng(1).uniform(size=(100, 3))
    keep, inverse = P.grid_sample(coord, 0.2)
    assert isinstance(keep, np.ndarray) and isinstance(inverse, np.ndarray)
    frags, inverse = P.grid_sample(coord, 0.2, mode="test")
    assert all(isinstance(f, np.ndarray) for f in frags)
    grid, batch, inv, cnt = P.voxelize(coord, 0.2)
    assert isinstance(grid, np.ndarray) and cnt.sum() == 100


def test_grid_bad_input():
    x = torch.rand(10, 3)
    with pytest.raises(ValueError, match="coord"):
        P.voxelize(torch.rand(10, 2), 0.1)
    bad = x.clone()
    bad[3, 1] = float("nan")
    for be in ("numba", "torch"):
        with pytest.raises(ValueError, match="coord"):
            P.grid_sample(bad, 0.1, backend=be)
    with pytest.raises(ValueError, match="grid_size"):
        P.voxelize(x, 0.0)
    with pytest.raises(ValueError, match="grid_size"):
        P.voxelize(x, -1)
    with pytest.raises(ValueError, match="offsets"):
        P.voxelize(x, 0.1, torch.tensor([0, 4, 9]))
    with pytest.raises(ValueError, match="offsets"):
        P.voxelize(x, 0.1, torch.tensor([0, 6, 4, 10]))
    with pytest.raises(ValueError, match="mode"):
        P.grid_sample(x, 0.1, mode="val")
    with pytest.raises(ValueError, match="backend"):
        P.voxelize(x, 0.1, backend="cuda")


# ----------------------------------------------------------------------------- FPS
def _fps_ref(xyz: np.ndarray, offsets, ks):
    out = []
    for b, k in enumerate(ks):
        s, e = offsets[b], offsets[b + 1]
        p = xyz[s:e]
        n = e - s
        if k == 0:
            continue
        sel = [0]
        dist = np.full(n, 1e10, p.dtype)
        for _ in range(1, min(k, n)):
            dist = np.minimum(dist, ((p - p[sel[-1]]) ** 2).sum(1))
            sel.append(int(np.argmax(dist)))
        while len(sel) < k:
            sel.append(sel[len(sel) - min(k, n)])
        out += [s + i for i in sel]
    return np.array(out, np.int64)


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_fps_matches_reference(backend):
    rng = np.random.default_rng(10)
    xyz = rng.normal(size=(260, 3)).astype(np.float32)
    xyz[200:210] = xyz[200]  # duplicates
    counts = [100, 0, 150, 10]
    offsets = _offsets(counts)
    ks = [30, 0, 40, 14]  # the last cloud has fewer points than samples
    idx, new_off = P.furthest_point_sample(torch.from_numpy(xyz), offsets, ks, backend=backend)
    np.testing.assert_array_equal(idx.numpy(), _fps_ref(xyz, offsets.tolist(), ks))
    assert new_off.tolist() == [0, 30, 30, 70, 84]
    assert idx[0].item() == 0 and idx[30].item() == 100
    idx2, off2 = P.furthest_point_sample(torch.from_numpy(xyz[:100]), None, 100, backend=backend)
    assert sorted(idx2.tolist()) == list(range(100)) and off2.tolist() == [0, 100]


def test_fps_bad_input():
    x = torch.rand(10, 3)
    with pytest.raises(ValueError, match="num_samples"):
        P.furthest_point_sample(x, torch.tensor([0, 10, 10]), 3)  # empty cloud asked for samples
    with pytest.raises(ValueError, match="num_samples"):
        P.furthest_point_sample(x, None, [3, 4])
    with pytest.raises(ValueError, match="num_samples"):
        P.furthest_point_sample(x, None, -1)
    with pytest.raises(ValueError, match="offsets"):
        P.furthest_point_sample(x, torch.tensor([0, 11]), 3)
    with pytest.raises(ValueError, match="xyz"):
        P.furthest_point_sample(torch.full((4, 3), float("nan")), None, 2)


# ----------------------------------------------------------------------------- ball query / knn
def _ball_ref(xyz, offsets, centers, coffsets, r, k):
    out = np.full((len(centers), k), -1, np.int64)
    for b in range(len(offsets) - 1):
        s, e = offsets[b], offsets[b + 1]
        for q in range(coffsets[b], coffsets[b + 1]):
            if e == s:
                continue
            d2 = ((xyz[s:e] - centers[q]) ** 2).sum(1)
            hits = np.flatnonzero((d2 == 0) | (d2 < np.float32(r * r)))[:k] + s
            if len(hits) == 0:
                hits = np.array([s + int(np.argmin(d2))])
            out[q] = np.r_[hits, np.full(k - len(hits), hits[0])]
    return out


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("scale", [1.0, 6.0])  # dense (in-order scan) and sparse (grid) paths
def test_ball_query_matches_reference(backend, scale):
    rng = np.random.default_rng(11)
    xyz = (rng.uniform(size=(3000, 3)) * scale).astype(np.float32)
    xyz[100:110] = xyz[100]  # duplicates
    counts = [1200, 0, 1800]
    offsets = _offsets(counts)
    centers = np.concatenate([xyz[:150], xyz[1200:1300] + 0.01]).astype(np.float32)
    centers[5] = [50.0, 50.0, 50.0]  # empty ball -> nearest point
    cofs = _offsets([150, 0, 100])
    idx = P.ball_query(
        torch.from_numpy(xyz), offsets, torch.from_numpy(centers), cofs, 0.2, 16, backend=backend
    )
    ref = _ball_ref(xyz, offsets.tolist(), centers, cofs.tolist(), 0.2, 16)
    np.testing.assert_array_equal(idx.numpy(), ref)
    assert (ref[:, 1] != ref[:, 0]).any() and (ref[:, -1] == ref[:, 0]).any()  # both filled and padded rows
    # zero radius keeps exact duplicates only
    idx0 = P.ball_query(
        torch.from_numpy(xyz), offsets, torch.from_numpy(xyz[100:101]), _offsets([1, 0, 0]), 0.0, 12
    )
    assert idx0[0].tolist() == list(range(100, 110)) + [100, 100]


def test_ball_query_grid_path_is_used_and_exact():
    from pc3d.kernels.points.neighbors import _use_grid

    rng = np.random.default_rng(12)
    xyz = torch.from_numpy((rng.uniform(size=(4000, 3)) * np.array([20.0, 20.0, 3.0])).astype(np.float32))
    off, cof = _offsets([4000]), _offsets([500])
    assert _use_grid(xyz, off, cof, 0.5, 8)[0]
    idx = P.ball_query(xyz, off, xyz[:500], cof, 0.5, 8)
    np.testing.assert_array_equal(
        idx.numpy(), _ball_ref(xyz.numpy(), [0, 4000], xyz[:500].numpy(), [0, 500], 0.5, 8)
    )


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_knn_and_three_nn_match_reference(backend):
    rng = np.random.default_rng(13)
    xyz = rng.normal(size=(400, 3)).astype(np.float32)
    counts = [5, 0, 395]
    offsets = _offsets(counts)
    q = rng.normal(size=(60, 3)).astype(np.float32)
    qofs = _offsets([20, 0, 40])
    idx, d2 = P.knn(torch.from_numpy(xyz), offsets, torch.from_numpy(q), qofs, 8, backend=backend)
    for m in range(60):
        b = 0 if m < 20 else 2
        s, e = offsets[b].item(), offsets[b + 1].item()
        dd = ((xyz[s:e] - q[m]) ** 2).sum(1)
        order = np.argsort(dd, kind="stable")[:8]
        n_valid = min(8, e - s)
        np.testing.assert_array_equal(idx[m, :n_valid].numpy(), order + s)
        np.testing.assert_allclose(d2[m, :n_valid].numpy(), dd[order], rtol=1e-5)
        assert (idx[m, n_valid:] == -1).all() and torch.isinf(d2[m, n_valid:]).all()
    i3, dist = P.three_nn(torch.from_numpy(xyz), offsets, torch.from_numpy(q), qofs, backend=backend)
    np.testing.assert_array_equal(i3.numpy(), idx[:, :3].numpy())
    np.testing.assert_allclose(dist.numpy(), np.sqrt(d2[:, :3].numpy()), rtol=1e-6)


def test_knn_ties_go_to_lower_index():
    xyz = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [1.0, 0, 0], [0, 0, 0.5]])
    idx, d2 = P.knn(xyz, None, torch.zeros(1, 3), None, 3)
    assert idx.tolist() == [[3, 0, 1]]
    i3, dist = P.three_nn(xyz[:2], None, torch.zeros(1, 3), None)  # only 2 known points
    assert i3.tolist() == [[0, 1, 0]] and torch.isinf(dist[0, 2])
    w = P.three_interpolate_weights(dist)
    assert w[0, 2].item() == 0.0 and w.sum().item() == pytest.approx(1.0)


def test_neighbour_bad_input():
    x, c = torch.rand(10, 3), torch.rand(4, 3)
    with pytest.raises(ValueError, match="radius"):
        P.ball_query(x, None, c, None, -0.1, 4)
    with pytest.raises(ValueError, match="k"):
        P.ball_query(x, None, c, None, 0.1, 0)
    with pytest.raises(ValueError, match="k"):
        P.knn(x, None, c, None, 0)
    with pytest.raises(ValueError, match="center"):
        P.ball_query(x, torch.tensor([0, 5, 10]), c, None, 0.1, 4)
    with pytest.raises(ValueError, match="centers"):
        P.ball_query(x, None, torch.rand(4, 2), None, 0.1, 4)
    with pytest.raises(ValueError, match="query"):
        P.knn(x, None, torch.full((4, 3), float("nan")), None, 2)
    with pytest.raises(ValueError, match="known_offsets"):
        P.three_nn(x, torch.tensor([0, 10, 10]), c, torch.tensor([0, 2, 4]))


# ----------------------------------------------------------------------------- gather / interpolate
def test_gather_and_three_interpolate_autograd():
    rng = np.random.default_rng(14)
    feat = torch.from_numpy(rng.normal(size=(30, 4))).requires_grad_(True)
    idx = torch.from_numpy(rng.integers(0, 30, size=(7, 5)))
    out = P.gather_points(feat, idx)
    assert out.shape == (7, 5, 4)
    np.testing.assert_array_equal(out.detach().numpy(), feat.detach().numpy()[idx.numpy()])
    torch.autograd.gradcheck(lambda f: P.gather_points(f, idx), (feat,))
    i3 = torch.from_numpy(rng.integers(0, 30, size=(9, 3)))
    w = torch.from_numpy(rng.uniform(size=(9, 3))).requires_grad_(True)
    y = P.three_interpolate(feat, i3, w)
    ref = (feat.detach().numpy()[i3.numpy()] * w.detach().numpy()[..., None]).sum(1)
    np.testing.assert_allclose(y.detach().numpy(), ref, rtol=1e-12)
    torch.autograd.gradcheck(lambda f, ww: P.three_interpolate(f, i3, ww), (feat, w))
    with pytest.raises(ValueError, match="idx"):
        P.gather_points(feat, torch.tensor([0, 30]))
    with pytest.raises(ValueError, match="idx"):
        P.gather_points(feat, torch.tensor([-1]))
    with pytest.raises(ValueError, match="weight"):
        P.three_interpolate(feat, i3, w[:, :2])


# ----------------------------------------------------------------------------- serial vs parallel kernels
def test_parallel_and_serial_compilations_agree():
    from pc3d.kernels import boxes as B
    from pc3d.kernels.points._common import kernel_mode

    rng = np.random.default_rng(20)
    xyz = torch.from_numpy(rng.uniform(size=(3000, 3)).astype(np.float32))
    off = _offsets([1000, 0, 2000])
    cen, cof = xyz[::10].contiguous(), _offsets([100, 0, 200])
    boxes = torch.from_numpy(
        np.c_[rng.uniform(0, 1, (20, 3)), rng.uniform(0.1, 0.5, (20, 3)), rng.uniform(-3, 3, 20)]
    )

    def run():
        return [
            P.furthest_point_sample(xyz, off, [50, 0, 60])[0],
            P.ball_query(xyz, off, cen, cof, 0.1, 8),
            P.ball_query(xyz * 20, off, cen * 20, cof, 0.3, 8),  # sparse: grid kernel
            P.knn(xyz, off, cen, cof, 5)[0],
            *P.voxelize(xyz, 0.05, off),
            P.grid_sample(xyz, 0.05, off, generator=torch.Generator().manual_seed(0))[0],
            P.serialize(P.voxelize(xyz, 0.05, off)[0], None, "hilbert", 5),
            B.boxes_iou3d(boxes, boxes),
            B.points_in_boxes_mask(xyz.double(), boxes),
        ]

    with kernel_mode("serial"):
        ser = run()
    with kernel_mode("parallel"):
        par = run()
    for a, b in zip(ser, par):
        assert torch.equal(a, b)


def _child_voxelize(q):
    x = torch.from_numpy(np.random.default_rng(0).uniform(size=(20000, 3)).astype(np.float32))
    q.put(int(P.voxelize(x, 0.05)[3].max()))


def test_kernels_survive_fork_after_parallel_use():
    """numba's GNU-OpenMP layer aborts a forked child that enters a parallel region (DataLoader workers)."""
    import multiprocessing as mp

    from pc3d.kernels.points._common import kernel_mode

    x = torch.from_numpy(np.random.default_rng(0).uniform(size=(20000, 3)).astype(np.float32))
    with kernel_mode("parallel"):
        expect = int(P.voxelize(x, 0.05)[3].max())  # the parent has used a parallel region
        ctx = mp.get_context("fork")
        q = ctx.Queue()
        proc = ctx.Process(target=_child_voxelize, args=(q,))
        proc.start()
        proc.join(60)
    assert proc.exitcode == 0
    assert q.get(timeout=5) == expect
