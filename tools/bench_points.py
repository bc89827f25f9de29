"""Benchmark of ``pc3d.kernels.points`` and ``pc3d.kernels.boxes`` against plain-torch versions.

Each op runs at a realistic size; the baseline is the op's plain-torch implementation
(``backend="torch"``: dense distance matrices + ``topk``, ``torch.unique``, a python-loop
FPS, the vectorised vertex-set box intersection), measured in the same run on the same
inputs. Times are medians over ``--repeats`` runs after one warm-up (JIT compilation
excluded). Point clouds are synthetic indoor rooms: points sampled on the floor, the walls
and the faces of random furniture boxes, with 5 mm noise (a ScanNet-like distribution).
torch-cluster is not measured (it has no PyPI wheels); the header says whether it is installed.

Usage: ``nice -n 5 python tools/bench_points.py [--repeats 7] [--quick] [--json out.json]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable

import numba
import numpy as np
import torch

from pc3d.kernels import boxes as B
from pc3d.kernels import points as P


def room(n: int, seed: int = 0, size=(6.0, 5.0, 2.8)) -> torch.Tensor:
    """``(n, 3)`` float32 points on the surfaces of a room with furniture."""
    rng = np.random.default_rng(seed)
    sx, sy, sz = size
    faces = [  # (origin, u, v) parallelograms
        ((0, 0, 0), (sx, 0, 0), (0, sy, 0)),
        ((0, 0, 0), (sx, 0, 0), (0, 0, sz)),
        ((0, sy, 0), (sx, 0, 0), (0, 0, sz)),
        ((0, 0, 0), (0, sy, 0), (0, 0, sz)),
        ((sx, 0, 0), (0, sy, 0), (0, 0, sz)),
    ]
    for _ in range(12):
        c = rng.uniform([0.5, 0.5, 0], [sx - 0.5, sy - 0.5, 0])
        d = rng.uniform([0.4, 0.4, 0.4], [1.6, 1.2, 1.8])
        o = c - [d[0] / 2, d[1] / 2, 0]
        faces += [
            (tuple(o + [0, 0, d[2]]), (d[0], 0, 0), (0, d[1], 0)),
            (tuple(o), (d[0], 0, 0), (0, 0, d[2])),
            (tuple(o + [0, d[1], 0]), (d[0], 0, 0), (0, 0, d[2])),
            (tuple(o), (0, d[1], 0), (0, 0, d[2])),
            (tuple(o + [d[0], 0, 0]), (0, d[1], 0), (0, 0, d[2])),
        ]
    o, u, v = (np.array([f[i] for f in faces], np.float64) for i in range(3))
    area = np.linalg.norm(np.cross(u, v), axis=1)
    f = rng.choice(len(faces), size=n, p=area / area.sum())
    st = rng.uniform(size=(n, 2))
    pts = o[f] + st[:, :1] * u[f] + st[:, 1:] * v[f] + rng.normal(scale=0.005, size=(n, 3))
    return torch.from_numpy(pts.astype(np.float32))


def timeit(fn: Callable[[], object], repeats: int, warmup: bool = True) -> tuple[float, float]:
    """Median wall ms and median process CPU ms (all threads) over ``repeats`` runs."""
    if warmup:
        fn()  # warm-up / JIT
    wall, cpu = [], []
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return 1e3 * statistics.median(wall), 1e3 * statistics.median(cpu)


def _torch_cluster():
    try:
        import torch_cluster  # noqa: F401

        return torch_cluster
    except ImportError:
        return None


def _kitti_like_boxes(n: int, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    b = np.zeros((n, 7), np.float32)
    b[:, 0] = rng.uniform(0, 70, n)
    b[:, 1] = rng.uniform(-40, 40, n)
    b[:, 2] = rng.uniform(-2, 0, n)
    b[:, 3:6] = rng.uniform([3.2, 1.5, 1.4], [4.8, 1.9, 1.7], (n, 3))
    b[:, 6] = rng.uniform(-math.pi, math.pi, n)
    # cluster half of them around the others (proposal-like overlaps)
    h = n // 2
    b[h:, :2] = b[:h, :2] + rng.normal(scale=0.8, size=(n - h, 2))
    return torch.from_numpy(b)


def cases(quick: bool):
    s = 0.1 if quick else 1.0
    n_fps, n_bq, n_grid = int(50_000 * s), int(20_000 * s), int(1_000_000 * s)
    rows = []

    x = room(n_fps, 1)
    rows.append(
        dict(
            op="furthest_point_sample",
            size=f"{int(4096 * s)} of {n_fps}",
            ours=lambda x=x: P.furthest_point_sample(x, None, int(4096 * s)),
            base=lambda x=x: P.furthest_point_sample(x, None, int(4096 * s), backend="torch"),
            target=250.0,
            base_repeats=1,
        )
    )
    batch = torch.cat([room(n_fps // 4, 10 + i) for i in range(8)])
    off8 = torch.arange(9) * (n_fps // 4)
    rows.append(
        dict(
            op="furthest_point_sample",
            size=f"8 clouds x {int(1024 * s)} of {n_fps // 4}",
            ours=lambda: P.furthest_point_sample(batch, off8, int(1024 * s)),
            base=lambda: P.furthest_point_sample(batch, off8, int(1024 * s), backend="torch"),
            base_repeats=1,
        )
    )
    x = room(n_bq, 2)
    c, _ = P.furthest_point_sample(x, None, int(2048 * s))
    ctr = x[c]
    cube = torch.from_numpy(np.random.default_rng(3).uniform(size=(n_bq, 3)).astype(np.float32))
    for name, pts, cc in (("room 6x5x2.8 m", x, ctr), ("unit cube", cube, cube[: int(2048 * s)])):
        o, co = torch.tensor([0, len(pts)]), torch.tensor([0, len(cc)])
        rows.append(
            dict(
                op="ball_query r=0.2 k=16",
                size=f"{len(cc)} ctr, {len(pts)} pts, {name}",
                ours=lambda pts=pts, cc=cc, o=o, co=co: P.ball_query(pts, o, cc, co, 0.2, 16),
                base=lambda pts=pts, cc=cc, o=o, co=co: P.ball_query(
                    pts, o, cc, co, 0.2, 16, backend="torch"
                ),
                target=5.0,
            )
        )
    o, co = torch.tensor([0, len(x)]), torch.tensor([0, len(ctr)])
    rows.append(
        dict(
            op="knn k=16",
            size=f"{len(ctr)} q, {len(x)} pts",
            ours=lambda: P.knn(x, o, ctr, co, 16),
            base=lambda: P.knn(x, o, ctr, co, 16, backend="torch"),
        )
    )
    known = x[c[: int(1024 * s)]]
    ko = torch.tensor([0, len(known)])
    unk = x[: int(8192 * s)]
    uo = torch.tensor([0, len(unk)])
    feat = torch.randn(len(known), 128)
    rows.append(
        dict(
            op="three_nn + three_interpolate",
            size=f"{len(unk)} from {len(known)}, C=128",
            ours=lambda: P.three_interpolate(feat, *_tn(known, ko, unk, uo, "auto")),
            base=lambda: P.three_interpolate(feat, *_tn(known, ko, unk, uo, "torch")),
        )
    )
    big = room(n_grid, 4)
    rows.append(
        dict(
            op="grid_sample 0.02 train",
            size=f"{n_grid} pts",
            ours=lambda: P.grid_sample(big, 0.02, generator=torch.Generator().manual_seed(0)),
            base=lambda: P.grid_sample(
                big, 0.02, generator=torch.Generator().manual_seed(0), backend="torch"
            ),
            target=150.0,
        )
    )
    rows.append(
        dict(
            op="voxelize 0.02",
            size=f"{n_grid} pts",
            ours=lambda: P.voxelize(big, 0.02),
            base=lambda: P.voxelize(big, 0.02, backend="torch"),
        )
    )
    grid, vb, _, _ = P.voxelize(big, 0.02)
    gpts = grid[torch.from_numpy(np.random.default_rng(5).integers(0, len(grid), n_grid))]
    bpts = torch.zeros(n_grid, dtype=torch.int64)
    for order in ("z", "hilbert"):
        rows.append(
            dict(
                op=f"serialize {order} + order",
                size=f"{n_grid} pts",
                ours=lambda order=order: P.serialization_order(P.serialize(gpts, bpts, order)),
                base=lambda order=order: _sort_torch(P.serialize(gpts, bpts, order, backend="torch")),
                target=150.0,
            )
        )
    bx = _kitti_like_boxes(500, 6)
    rows.append(
        dict(
            op="boxes_iou3d (rotated)",
            size="500 x 500, KITTI-like scene",
            ours=lambda: B.boxes_iou3d(bx, bx),
            base=lambda: B.boxes_iou3d(bx, bx, backend="torch"),
            target=100.0,
            base_repeats=1,
        )
    )
    dense = bx.clone()
    dense[:, :2] = torch.from_numpy(np.random.default_rng(9).uniform(-2.5, 2.5, (500, 2)).astype(np.float32))
    rows.append(
        dict(
            op="boxes_iou3d (rotated)",
            size="500 x 500, all within 5 m (worst case)",
            ours=lambda: B.boxes_iou3d(dense, dense),
            base=lambda: B.boxes_iou3d(dense, dense, backend="torch"),
            target=100.0,
            base_repeats=1,
        )
    )
    rows.append(
        dict(
            op="boxes_iou_bev (rotated)",
            size="500 x 500",
            ours=lambda: B.boxes_iou_bev(bx, bx),
            base=lambda: B.boxes_iou_bev(bx, bx, backend="torch"),
            base_repeats=1,
        )
    )
    scores = torch.rand(500, generator=torch.Generator().manual_seed(0))
    rows.append(
        dict(
            op="nms_rotated thr 0.1",
            size="500 boxes",
            ours=lambda: B.nms_rotated(bx, scores, 0.1),
            base=lambda: _nms_torch(bx, scores, 0.1),
            base_repeats=1,
        )
    )
    lidar = torch.from_numpy(
        np.random.default_rng(7).uniform([0, -40, -3], [70, 40, 1], (int(120_000 * s), 3)).astype(np.float32)
    )
    gtb = _kitti_like_boxes(40, 8)
    rows.append(
        dict(
            op="points_in_boxes",
            size=f"{len(lidar)} pts x 40 boxes",
            ours=lambda: B.points_in_boxes(lidar, gtb),
            base=lambda: B.points_in_boxes(lidar, gtb, backend="torch"),
        )
    )
    return rows


def _tn(known, ko, unk, uo, backend):
    idx, dist = P.three_nn(known, ko, unk, uo, backend=backend)
    return idx, P.three_interpolate_weights(dist)


def _sort_torch(code):
    order = torch.sort(code, stable=True).indices
    inv = torch.empty_like(order)
    inv[order] = torch.arange(len(order))
    return order, inv


def _nms_torch(boxes, scores, thr):
    iou = B.boxes_iou_bev(boxes, boxes, backend="torch")
    order = torch.sort(-scores, stable=True).indices
    sup = torch.zeros(len(boxes), dtype=torch.bool)
    keep = []
    for i in order.tolist():
        if sup[i]:
            continue
        keep.append(i)
        sup |= iou[i] > thr
    return torch.tensor(keep)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="10x smaller sizes (smoke test)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None, help="also write the rows to this file")
    ap.add_argument("--only", default="", help="run only the ops whose name contains this string")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    tc = _torch_cluster()
    print(
        f"# {platform.machine()} {platform.processor() or ''}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, numba {numba.__version__}, torch-cluster: {'yes' if tc else 'not installed'}, "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    hdr = (
        f"| {'op':<28} | {'size':<36} | {'pc3d ms':>8} | {'pc3d cpu':>8} | {'torch ms':>9} | {'torch cpu':>9} "
        f"| {'speed-up':>8} | {'target':>9} |"
    )
    print(hdr)
    print("|" + "|".join("-" * (len(c)) for c in hdr.split("|")[1:-1]) + "|")
    out = []
    for row in cases(args.quick):
        if args.only not in row["op"]:
            continue
        ours, ours_cpu = timeit(row["ours"], args.repeats)
        br = row.get("base_repeats", args.repeats)
        base, base_cpu = timeit(row["base"], br, warmup=br > 1)  # slow baselines: one run (no JIT involved)
        tgt = row.get("target")
        met = "" if tgt is None or args.quick else (f"{tgt:g} {'ok' if ours <= tgt else 'MISS'}")
        print(
            f"| {row['op']:<28} | {row['size']:<36} | {ours:8.2f} | {ours_cpu:8.2f} | {base:9.2f} | {base_cpu:9.2f} "
            f"| {base / ours:7.1f}x | {met:>9} |",
            flush=True,
        )
        out.append(
            dict(
                op=row["op"],
                size=row["size"],
                ours_ms=ours,
                ours_cpu_ms=ours_cpu,
                torch_ms=base,
                torch_cpu_ms=base_cpu,
                target_ms=tgt,
            )
        )
    print(f"# load average at the end: {os.getloadavg()[0]:.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
