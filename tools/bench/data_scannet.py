"""Benchmark: ScanNet preprocessing per scene and load + training pipeline per sample, on one core.

Each pc3d measurement is paired with a plain baseline measured in the same run:

- preprocess: pc3d ``convert_scene`` + ``write_scene`` vs a straightforward numpy port of the peer
  converters (``np.isin`` per segGroup as Pointcept, ``np.add.at`` vertex normals, an
  ``instance == id`` mask per box as mmdetection3d), both reading the same files and saving .npy.
- seg pipeline: ``load_scene`` + the full PTv3 train pipeline (``ScanNetDataset.__getitem__``) vs
  the same steps written Pointcept-style with numpy/scipy (``min(0)``/``max(0)``, scipy
  ``convolve`` + ``RegularGridInterpolator`` elastic distortion, FNV-1a hash + sort grid sampling).
- det pipeline: ``load_scene`` + VoteNet train pipeline vs numpy with a per-instance loop for votes.

Usage: ``python -m pc3d.tools.bench.data_scannet [--samples DIR] [--repeats N]``; prints a table of
medians (ms) and baseline/pc3d ratios. Uses ``$PC3D_SAMPLES/scannet`` (real scene0000_00).
"""

from __future__ import annotations

import os

# one core: pin the BLAS/OpenMP/numba pools before numpy is imported (no effect if it already was)
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402


def _median_ms(fn, repeats: int, warmup: int = 2) -> tuple[float, float]:
    """``(median wall, median CPU)`` time in ms. Everything runs on one thread, so the process CPU
    time is the one-core cost even when other jobs share the cores (wall time then includes waits)."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        cpu.append(time.process_time() - c)
        wall.append(time.perf_counter() - t)
    return statistics.median(wall) * 1e3, statistics.median(cpu) * 1e3


# ---------------------------------------------------------------- baselines (plain numpy / scipy)


def baseline_preprocess(scene_dir: Path, tsv: Path, out: Path) -> None:
    sid = scene_dir.name
    data = (scene_dir / f"{sid}_vh_clean_2.ply").read_bytes()
    hdr_end = data.index(b"end_header\n") + len(b"end_header\n")
    header = data[:hdr_end].decode()
    nv = int(header.split("element vertex ")[1].split()[0])
    nf = int(header.split("element face ")[1].split()[0])
    vdt = np.dtype(
        [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("r", "u1"), ("g", "u1"), ("b", "u1"), ("a", "u1")]
    )
    v = np.frombuffer(data, vdt, nv, hdr_end)
    f = np.frombuffer(data, np.dtype([("n", "u1"), ("i", "<i4", (3,))]), nf, hdr_end + vdt.itemsize * nv)["i"]
    coord = np.stack([v["x"], v["y"], v["z"]], 1)
    color = np.stack([v["r"], v["g"], v["b"]], 1)
    vec = np.cross(coord[f[:, 1]] - coord[f[:, 0]], coord[f[:, 2]] - coord[f[:, 0]])
    nv_ = np.zeros((nv, 3))
    for k in range(3):
        np.add.at(nv_, f[:, k], vec)
    normal = (nv_ / (np.linalg.norm(nv_, axis=1, keepdims=True) + 1e-8)).astype(np.float32)
    rows = [ln.split("\t") for ln in tsv.read_text().splitlines()[1:]]
    raw_to = {r[1]: (int(r[0]), int(r[4])) for r in rows}
    seg = np.array(json.loads((scene_dir / f"{sid}_vh_clean_2.0.010000.segs.json").read_text())["segIndices"])
    groups = json.loads((scene_dir / f"{sid}.aggregation.json").read_text())["segGroups"]
    ids20 = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36, 39]
    s20 = np.full(nv, -1, np.int16)
    inst = np.full(nv, -1, np.int32)
    labels = {}
    for g in groups:
        _, nyu = raw_to.get(g["label"], (0, 0))
        idx = np.where(np.isin(seg, g["segments"]))[0]
        s20[idx] = ids20.index(nyu) if nyu in ids20 else -1
        inst[idx] = g["id"]
        labels[g["id"]] = nyu
    m = None
    for line in (scene_dir / f"{sid}.txt").read_text().splitlines():
        if line.startswith("axisAlignment"):
            m = np.array(line.split("=")[1].split(), float).reshape(4, 4)
    aligned = coord @ m[:3, :3].T + m[:3, 3]
    boxes = []
    for gid, nyu in labels.items():
        pts = aligned[inst == gid]
        if len(pts) and nyu in ids20[2:]:
            boxes.append(np.r_[(pts.min(0) + pts.max(0)) / 2, pts.max(0) - pts.min(0), 0])
    out.mkdir(parents=True, exist_ok=True)
    for name, arr in (("coord", coord), ("color", color), ("normal", normal), ("segment20", s20),
                      ("instance", inst), ("boxes", np.array(boxes, np.float32))):  # fmt: skip
        np.save(out / f"{name}.npy", arr)


def _fnv_hash(arr: np.ndarray) -> np.ndarray:
    x = arr.astype(np.uint64)
    h = np.full(x.shape[0], 14695981039346656037, dtype=np.uint64)
    for j in range(x.shape[1]):
        h = (h * np.uint64(1099511628211)) ^ x[:, j]
    return h


def baseline_seg_sample(scene: Path, rng: np.random.Generator) -> dict:
    from scipy.interpolate import RegularGridInterpolator
    from scipy.ndimage import convolve

    coord = np.load(scene / "coord.npy")
    color = np.load(scene / "color.npy").astype(np.float32)
    normal = np.load(scene / "normal.npy")
    segment = np.load(scene / "segment20.npy").astype(np.int64)
    coord = coord - np.r_[(coord.min(0)[:2] + coord.max(0)[:2]) / 2, coord.min(0)[2]]
    if rng.random() < 0.2:
        idx = rng.choice(len(coord), int(len(coord) * 0.8), replace=False)
        coord, color, normal, segment = coord[idx], color[idx], normal[idx], segment[idx]
    for axis, rng_pi in (("z", 1.0), ("x", 1 / 64), ("y", 1 / 64)):
        if rng.random() < 0.5:
            a = rng.uniform(-rng_pi, rng_pi) * np.pi
            c, s = np.cos(a), np.sin(a)
            r = {"z": [[c, -s, 0], [s, c, 0], [0, 0, 1]], "x": [[1, 0, 0], [0, c, -s], [0, s, c]],
                 "y": [[c, 0, s], [0, 1, 0], [-s, 0, c]]}[axis]  # fmt: skip
            coord, normal = coord @ np.array(r).T, normal @ np.array(r).T
    coord = coord * rng.uniform(0.9, 1.1)
    for k in (0, 1):
        if rng.random() < 0.5:
            coord[:, k], normal[:, k] = -coord[:, k], -normal[:, k]
    coord = coord + np.clip(0.005 * rng.standard_normal(coord.shape), -0.02, 0.02)
    if rng.random() < 0.95:
        for gran, mag in ((0.2, 0.4), (0.8, 1.6)):
            lo = coord.min(0)
            dim = ((coord - lo).max(0) // gran).astype(int) + 3
            noise = rng.standard_normal((*dim, 3)).astype(np.float32)
            for _ in range(2):
                for ker in ((3, 1, 1, 1), (1, 3, 1, 1), (1, 1, 3, 1)):
                    noise = convolve(noise, np.ones(ker, np.float32) / 3, mode="constant", cval=0)
            ax = [np.linspace(a, b, d) for a, b, d in zip(lo - gran, lo + gran * (dim - 2), dim)]
            coord = coord + RegularGridInterpolator(ax, noise, bounds_error=False, fill_value=0)(coord) * mag
    if rng.random() < 0.2:
        lo, hi = color.min(0, keepdims=True), color.max(0, keepdims=True)
        bf = rng.random()
        color = (1 - bf) * color + bf * (color - lo) * 255 / (hi - lo)
    if rng.random() < 0.95:
        color = np.clip(color + (rng.random((1, 3)) - 0.5) * 255 * 2 * 0.05, 0, 255)
    if rng.random() < 0.95:
        color = np.clip(color + rng.standard_normal(color.shape) * 0.05 * 255, 0, 255)
    grid = np.floor(coord / 0.02).astype(np.int64)
    grid -= grid.min(0)
    key = _fnv_hash(grid)
    order = np.argsort(key)
    _, inverse, count = np.unique(key[order], return_inverse=True, return_counts=True)
    pick = np.cumsum(np.insert(count, 0, 0)[:-1]) + rng.integers(0, count.max(), count.size) % count
    keep = order[pick]
    coord, color, normal, segment, grid = coord[keep], color[keep], normal[keep], segment[keep], grid[keep]
    coord = coord - np.r_[(coord.min(0)[:2] + coord.max(0)[:2]) / 2, 0]
    color = color / 127.5 - 1
    return {"coord": coord.astype(np.float32), "feat": np.concatenate([color, normal], 1).astype(np.float32),
            "segment": segment, "grid_coord": grid}  # fmt: skip


def baseline_det_sample(scene: Path, rng: np.random.Generator, num_points: int) -> dict:
    coord = np.load(scene / "coord.npy")
    m = np.load(scene / "axis_align.npy")
    seg = np.load(scene / "segment20.npy")
    inst = np.load(scene / "instance.npy")
    boxes = np.load(scene / "boxes.npy")
    coord = coord @ m[:3, :3].T + m[:3, 3]
    height = coord[:, 2] - np.percentile(coord[:, 2], 0.99)
    idx = rng.choice(len(coord), num_points, replace=len(coord) < num_points)
    coord, height, seg, inst = coord[idx], height[idx], seg[idx], inst[idx]
    for k in (0, 1):
        if rng.random() < 0.5:
            coord[:, k] = -coord[:, k]
            boxes[:, k] = -boxes[:, k]
    a = rng.uniform(-np.pi / 36, np.pi / 36)
    r = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    coord = coord @ r.T
    boxes[:, :3] = boxes[:, :3] @ r.T
    vote = np.zeros((num_points, 3), np.float32)
    mask = np.zeros(num_points, bool)
    for i in np.unique(inst):
        sel = np.nonzero(inst == i)[0]
        if i >= 0 and seg[sel[0]] >= 2:
            pts = coord[sel]
            vote[sel] = (pts.min(0) + pts.max(0)) / 2 - pts
            mask[sel] = True
    return {"coord": coord, "height": height, "vote": vote, "mask": mask, "boxes": boxes}


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench data_scannet", description=__doc__.splitlines()[0])
    default = Path(
        os.environ.get("PC3D_SAMPLES", Path(__file__).resolve().parents[2].parent / "shared" / "data")
    )
    parser.add_argument("--samples", type=Path, default=default, help="sample data root (holds scannet/)")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--num-points", type=int, default=40000, help="det pipeline points")
    args = parser.parse_args(argv)
    sn = args.samples / "scannet"
    if not (sn / "scans" / "scene0000_00").is_dir():
        print(f"error: no ScanNet sample under {sn}", file=sys.stderr)
        return 2

    import numba
    import torch

    torch.set_num_threads(1)
    numba.set_num_threads(1)
    from pc3d.data.scannet import DetAugParams, ScanNetDataset
    from pc3d.data.scannet.preprocess import convert_scene, write_scene
    from pc3d.data.scannet.raw import read_label_tsv

    scene_dir = sn / "scans" / "scene0000_00"
    tsv = sn / "meta" / "scannetv2-labels.combined.tsv"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)

        def ours_pre():
            labels = read_label_tsv(tsv)
            r = convert_scene(scene_dir, labels)
            write_scene(tmp / "scans", "scene0000_00", r["arrays"], r["meta"])

        reps = max(3, args.repeats // 3)
        t_base = _median_ms(lambda: baseline_preprocess(scene_dir, tsv, tmp / "base"), reps, 1)
        t_ours = _median_ms(ours_pre, reps, 1)
        rows.append(("preprocess scene0000_00 (81,369 pts)", t_base, t_ours))
        (tmp / "splits").mkdir()
        (tmp / "splits" / "train.txt").write_text("scene0000_00\n")
        scene = tmp / "scans" / "scene0000_00"

        ds = ScanNetDataset(tmp, "train", task="seg", stage="train")
        it = iter(range(10**9))
        from pc3d.data.scannet import load_scene

        keys = ("coord", "color", "normal", "segment20", "instance")
        t_load_b = _median_ms(lambda: [np.load(scene / f"{k}.npy") for k in keys], args.repeats)
        t_load_o = _median_ms(lambda: load_scene(scene, keys), args.repeats)
        rows.append(("load_scene (checked) vs bare np.load", t_load_b, t_load_o))
        rng_b = np.random.default_rng(0)
        t_base = _median_ms(lambda: baseline_seg_sample(scene, rng_b), args.repeats)
        t_ours = _median_ms(lambda: ds[(next(it), 0)], args.repeats)
        rows.append(("load + PTv3 seg train pipeline", t_base, t_ours))

        dd = ScanNetDataset(
            tmp, "train", task="det", stage="train", det_aug=DetAugParams(num_points=args.num_points)
        )
        t_base = _median_ms(lambda: baseline_det_sample(scene, rng_b, args.num_points), args.repeats)
        t_ours = _median_ms(lambda: dd[(next(it), 0)], args.repeats)
        rows.append((f"load + VoteNet det train pipeline ({args.num_points} pts)", t_base, t_ours))

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"1 thread (torch, numba, BLAS), numpy {np.__version__}, load average {load:.1f}; medians in ms")
    head = f"| {'step':<48} | {'baseline wall':>13} | {'pc3d wall':>9} | {'baseline CPU':>12} | {'pc3d CPU':>8} |"
    print(head + " baseline/pc3d (CPU) |")
    print(f"|{'-' * 50}|{'-' * 15}|{'-' * 11}|{'-' * 14}|{'-' * 10}|{'-' * 21}|")
    for name, (bw, bc), (ow, oc) in rows:
        print(f"| {name:<48} | {bw:13.1f} | {ow:9.1f} | {bc:12.1f} | {oc:8.1f} | {bc / oc:18.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
