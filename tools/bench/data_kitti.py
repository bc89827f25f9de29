"""Benchmark of the KITTI data pipeline and evaluation (``python -m pc3d.tools.bench.data_kitti``).

Three targets, each against a baseline measured in the same run:

1. evaluation of 3,769 frames of predictions (synthetic GT/prediction annos, all three classes plus
   Van/DontCare) — baseline: the same algorithm run as plain Python (``NUMBA_DISABLE_JIT=1``) on a
   subset, scaled linearly to the full count;
2. preprocessing (FOV, difficulty, points per box, GT objects, atomic writes) of real-sized frames —
   baseline: the I/O floor (read the ``.bin``, write the ``.npy``);
3. the training pipeline with GT-sampling, one process, one thread — baseline: the same pipeline
   without GT-sampling.

Frames come from ``$PC3D_SAMPLES/kitti`` (the two real frames, repeated through symlinks) or, when
absent, from a synthetic generator. Prints a table of medians.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CLASSES = ("Car", "Pedestrian", "Cyclist")


# ----------------------------------------------------------------- synthetic annos
def synthetic_annos(n_frames: int, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """KITTI-like GT annos (~8 objects/frame incl. Van, Person_sitting, DontCare) and predictions
    (~80% of GTs detected with noise, plus false positives; ~15 detections/frame)."""
    rng = np.random.default_rng(seed)
    names = np.array(["Car", "Pedestrian", "Cyclist", "Van", "Person_sitting", "DontCare"])
    probs = np.array([0.55, 0.15, 0.08, 0.07, 0.03, 0.12])
    size = {
        "Car": (3.9, 1.56, 1.6),
        "Pedestrian": (0.8, 1.73, 0.6),
        "Cyclist": (1.76, 1.73, 0.6),
        "Van": (5.0, 2.2, 1.9),
        "Person_sitting": (0.8, 1.2, 0.6),
        "DontCare": (-1, -1, -1),
    }
    gts, dts = [], []
    for _ in range(n_frames):
        n = int(rng.integers(2, 15))
        nm = rng.choice(names, n, p=probs)
        z = rng.uniform(5, 70, n)
        x = rng.uniform(-0.6, 0.6, n) * z
        dims = np.array([size[c] for c in nm]) * rng.uniform(0.9, 1.1, (n, 1))
        ry = rng.uniform(-np.pi, np.pi, n)
        loc = np.stack([x, np.full(n, 1.6), z], 1)
        u = 609 + 721 * x / z
        hpx = 721 * np.abs(dims[:, 1]) / z
        wpx = 721 * np.abs(dims[:, 0]) / z
        bbox = np.stack([u - wpx / 2, 173 - hpx / 2, u + wpx / 2, 173 + hpx / 2], 1)
        gt = {
            "name": nm.astype("<U16"),
            "truncated": rng.choice([0.0, 0.2, 0.4, 0.6], n, p=[0.7, 0.15, 0.1, 0.05]),
            "occluded": rng.choice([0, 1, 2, 3], n, p=[0.5, 0.3, 0.15, 0.05]).astype(np.int64),
            "alpha": ry - np.arctan2(x, z),
            "bbox": bbox,
            "dimensions": dims,
            "location": loc,
            "rotation_y": ry,
            "score": np.zeros(n),
        }
        dc = nm == "DontCare"
        gt["location"][dc] = -1000
        gt["rotation_y"][dc] = -10
        det = (~dc) & (rng.random(n) < 0.8)
        k = int(det.sum())
        nfp = int(rng.integers(0, 10))
        fp_nm = rng.choice(np.array(CLASSES), nfp)
        fz = rng.uniform(5, 70, nfp)
        fx = rng.uniform(-0.6, 0.6, nfp) * fz
        fdims = np.array([size[c] for c in fp_nm]).reshape(-1, 3)
        fu, fh, fw = 609 + 721 * fx / fz, 721 * fdims[:, 1] / fz, 721 * fdims[:, 0] / fz
        dt_nm = np.concatenate(
            [
                np.where(
                    nm[det] == "Van", "Car", np.where(nm[det] == "Person_sitting", "Pedestrian", nm[det])
                ),
                fp_nm,
            ]
        )
        dt = {
            "name": dt_nm.astype("<U16"),
            "truncated": np.zeros(k + nfp),
            "occluded": np.zeros(k + nfp, np.int64),
            "alpha": np.concatenate([gt["alpha"][det] + rng.normal(0, 0.2, k), rng.uniform(-3, 3, nfp)]),
            "bbox": np.concatenate(
                [
                    bbox[det] + rng.normal(0, 3, (k, 4)),
                    np.stack([fu - fw / 2, 173 - fh / 2, fu + fw / 2, 173 + fh / 2], 1),
                ]
            ),
            "dimensions": np.concatenate([dims[det] * rng.uniform(0.93, 1.07, (k, 3)), fdims]),
            "location": np.concatenate(
                [loc[det] + rng.normal(0, 0.15, (k, 3)), np.stack([fx, np.full(nfp, 1.6), fz], 1)]
            ),
            "rotation_y": np.concatenate([ry[det] + rng.normal(0, 0.1, k), rng.uniform(-3, 3, nfp)]),
            "score": np.concatenate([rng.uniform(0.3, 1.0, k), rng.uniform(0.05, 0.8, nfp)]),
        }
        gts.append(gt)
        dts.append(dt)
    return gts, dts


def _eval_child(n_frames: int) -> float:
    from pc3d.metrics.kitti_eval import kitti_eval

    gts, dts = synthetic_annos(n_frames)
    t = time.perf_counter()
    kitti_eval(gts, dts, CLASSES)
    return time.perf_counter() - t


def bench_eval(n_frames: int, baseline_frames: int, repeat: int) -> dict:
    from pc3d.metrics.kitti_eval import kitti_eval

    gts, dts = synthetic_annos(n_frames)
    kitti_eval(gts[:20], dts[:20], CLASSES)  # compile / load the numba cache
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        res = kitti_eval(gts, dts, CLASSES)
        times.append(time.perf_counter() - t)
    base = None
    if baseline_frames > 0:
        env = dict(os.environ, NUMBA_DISABLE_JIT="1")
        code = f"from pc3d.tools.bench.data_kitti import _eval_child; print(_eval_child({baseline_frames}))"
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        base = float(out.stdout.strip().splitlines()[-1]) * n_frames / baseline_frames
    return {"time": statistics.median(times), "baseline": base, "car_3d_mod_R40": res["Car"]["3d_R40"][1]}


# ----------------------------------------------------------------- frames
def make_root(tmp: Path, n_frames: int, samples: Path | None) -> Path:
    """A KITTI training dir of ``n_frames`` ids: real frames through symlinks, or synthetic ones."""
    root = tmp / "kitti"
    for sub in ("velodyne", "calib", "label_2", "image_2"):
        (root / "training" / sub).mkdir(parents=True, exist_ok=True)
    ext = {"velodyne": "bin", "calib": "txt", "label_2": "txt", "image_2": "png"}
    if samples is not None and (samples / "training" / "velodyne" / "000001.bin").exists():
        src = ["000001", "000002"]
        for i in range(n_frames):
            for sub, e in ext.items():
                (root / "training" / sub / f"{i:06d}.{e}").symlink_to(
                    samples / "training" / sub / f"{src[i % 2]}.{e}"
                )
        return root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "data"))
    from kitti_synth import make_kitti_root  # synthetic fallback (smaller clouds)

    return make_kitti_root(root, [f"{i:06d}" for i in range(n_frames)])


def bench_preprocess(tmp: Path, root: Path, n_frames: int, repeat: int) -> dict:
    from pc3d.data.kitti.io import read_velodyne
    from pc3d.data.kitti.preprocess import preprocess
    from pc3d.io import save_npy

    ids = [f"{i:06d}" for i in range(n_frames)]
    splits = {"train": ids[0::2], "val": ids[1::2]}
    preprocess(root, tmp / "warm", 0, True, progress=False, splits={"train": ids[:2], "val": []})
    times, base = [], []
    for r in range(repeat):
        t = time.perf_counter()
        preprocess(root, tmp / f"pre{r}", 0, True, progress=False, splits=splits)
        times.append(time.perf_counter() - t)
        t = time.perf_counter()
        for i in ids:
            save_npy(tmp / f"io{r}" / f"{i}.npy", read_velodyne(root / "training" / "velodyne" / f"{i}.bin"))
        base.append(time.perf_counter() - t)
    return {
        "fps": n_frames / statistics.median(times),
        "baseline_fps": n_frames / statistics.median(base),
        "out": tmp / "pre0",
    }


def write_gt_database(out: Path, n_per_class: dict[str, int], seed: int = 0) -> None:
    """A train-split-sized GT database (Car 14k, Pedestrian 2.2k, Cyclist 0.7k objects by default)
    with realistic point counts, so GT-sampling is timed at full scale."""
    from pc3d.io import save_npy, write_json

    rng = np.random.default_rng(seed)
    size = {"Car": (3.9, 1.6, 1.56), "Pedestrian": (0.8, 0.6, 1.73), "Cyclist": (1.76, 0.6, 1.73)}
    classes = {}
    for c, n in n_per_class.items():
        counts = rng.integers(5, 600, n)
        offs = np.concatenate([[0], np.cumsum(counts)[:-1]])
        pts = rng.uniform(-0.45, 0.45, (int(counts.sum()), 4)).astype(np.float32)
        pts[:, :3] *= np.asarray(size[c], np.float32)
        save_npy(out / "gt_database" / f"{c}.npy", pts)
        x, y = rng.uniform(3, 68, n), rng.uniform(-38, 38, n)
        yaw = rng.uniform(-np.pi, np.pi, n)
        entries = [
            {
                "box3d_lidar": [float(x[i]), float(y[i]), -1.0, *size[c], float(yaw[i])],
                "count": int(counts[i]),
                "offset": int(offs[i]),
                "difficulty": int(rng.integers(0, 3)),
            }
            for i in range(n)
        ]
        classes[c] = entries
    write_json(out / "gt_database" / "dbinfos_train.json", {"version": 1, "classes": classes})


def bench_pipeline(out: Path, n_items: int, repeat: int) -> dict:
    import torch

    from pc3d.data.kitti.dataset import KittiDataset

    write_gt_database(out, {"Car": 14000, "Pedestrian": 2200, "Cyclist": 730})
    res = {}
    for name, kw in (
        ("gt", {"training": True}),
        ("nogt", {"training": True, "gt_sampling": False}),
        ("eval", {"training": False}),
    ):
        ds = KittiDataset(out, "train", **kw)
        ds[0]
        per = []
        for _ in range(repeat):
            torch.manual_seed(0)
            t = time.perf_counter()
            for i in range(n_items):
                ds[i % len(ds)]
            per.append((time.perf_counter() - t) / n_items)
        res[name] = 1.0 / statistics.median(per)
    item = KittiDataset(out, "train", training=True)[0]
    res["boxes_after_sampling"] = len(item["boxes"])
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m pc3d.tools.bench.data_kitti", description=__doc__.splitlines()[0]
    )
    p.add_argument("--eval-frames", type=int, default=3769)
    p.add_argument("--eval-baseline-frames", type=int, default=60, help="0 skips the pure-Python baseline")
    p.add_argument("--pre-frames", type=int, default=40)
    p.add_argument("--train-items", type=int, default=100)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--samples", default=None, help="KITTI sample dir (default $PC3D_SAMPLES/kitti)")
    p.add_argument("--json", default=None, help="also write the numbers here")
    args = p.parse_args(argv)

    import numba
    import torch

    samples = (
        Path(args.samples)
        if args.samples
        else Path(os.environ.get("PC3D_SAMPLES", Path(__file__).resolve().parents[3] / "shared" / "data"))
        / "kitti"
    )
    samples = samples if samples.is_dir() else None
    rows = []
    ev = bench_eval(args.eval_frames, args.eval_baseline_frames, args.repeat)
    rows.append(
        (
            f"evaluation, {args.eval_frames} frames (s, {numba.get_num_threads()} threads)",
            ev["time"],
            ev["baseline"],
            "≤ 30 s",
        )
    )
    torch.set_num_threads(1)
    numba.set_num_threads(1)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        root = make_root(tmp, args.pre_frames, samples)
        pre = bench_preprocess(tmp, root, args.pre_frames, args.repeat)
        rows.append(("preprocessing (frames/s, 1 process)", pre["fps"], pre["baseline_fps"], "≥ 20"))
        pipe = bench_pipeline(pre["out"], args.train_items, args.repeat)
        rows.append(("train pipeline + GT-sampling (frames/s/core)", pipe["gt"], pipe["nogt"], "≥ 30"))
        rows.append(("eval pipeline, no augmentation (frames/s/core)", pipe["eval"], None, "—"))
    src = "real frames 000001/000002 repeated" if samples else "synthetic frames"
    print(
        f"\nKITTI data benchmark ({src}; medians of {args.repeat}; boxes/frame after GT-sampling: "
        f"{pipe['boxes_after_sampling']})"
    )
    print(f"{'measure':52s} {'pc3d':>10s} {'baseline':>10s} {'ratio':>7s} {'target':>8s}")
    for name, v, b, tgt in rows:
        lower_better = name.startswith("evaluation")
        ratio = "" if b is None else f"{(b / v if lower_better else v / b):.2f}x"
        bs = "" if b is None else f"{b:10.2f}"
        print(f"{name:52s} {v:10.2f} {bs:>10s} {ratio:>7s} {tgt:>8s}")
    print("ratio = pc3d speed / baseline speed (> 1: pc3d faster)")
    print(
        "baselines: eval = same algorithm without numba (NUMBA_DISABLE_JIT, scaled from "
        f"{args.eval_baseline_frames} frames); preprocessing = read .bin + write .npy only; "
        "train pipeline = same without GT-sampling"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": [list(r) for r in rows]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
