"""``bench_models.py det``: Pointformer detectors at paper size, forward latency, peak memory, time shares.

ScanNet: Pointformer + VoteNet (``configs/pointformer_votenet_scannet.yaml``) on the real scene0000_00
(aligned, ``--scannet-points`` random points, height feature). KITTI: Pointformer + PointRCNN-style
head (``configs/pointformer_pointrcnn_kitti.yaml``) on the real frame 000001 (front half,
``--kitti-points`` points, reflectance). Variants per dataset, with ratios against the first
(the official switches) measured in the same run:

- ScanNet: ``official`` (LGT off, no refinement; the released config), ``+refine``, ``+LGT+refine``.
- KITTI: ``two-stage`` (the config), ``one-stage`` (stage 2 off), ``no-LGT``.

Each variant runs in a fresh subprocess so its peak RSS (``ru_maxrss`` minus the RSS before the
first forward) is its own. Latency is the median of ``--repeats`` eval-mode forwards (no grad) after
one warm-up. Time shares come from a separate instrumented forward: sampling/grouping (FPS + ball
query + 3-NN), Local Transformer, Local-Global Transformer, Global Transformer, feature propagation,
head (including its own sampling, NMS and stage 2).

    python tools/bench_models.py det [--repeats 3] [--threads 2] [--scannet-points 40000] [--kitti-points 16384]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from pc3d.tools.bench.component_timer import ComponentTimer
from pc3d.tools.bench.model_configs import model_from_configs
from pc3d.tools.bench.process_memory import rss_bytes

REPO = Path(__file__).resolve().parents[2]
VARIANTS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    # name: (config, backbone overrides, head overrides)
    "scannet/official": ("pointformer_votenet_scannet.yaml", {}, {}),
    "scannet/+refine": ("pointformer_votenet_scannet.yaml", {"refine": True}, {}),
    "scannet/+LGT+refine": (
        "pointformer_votenet_scannet.yaml",
        {"refine": True, "use_local_global": True},
        {},
    ),
    "kitti/two-stage": ("pointformer_pointrcnn_kitti.yaml", {}, {}),
    "kitti/one-stage": ("pointformer_pointrcnn_kitti.yaml", {}, {"use_rcnn": False}),
    "kitti/no-LGT": ("pointformer_pointrcnn_kitti.yaml", {"use_local_global": False}, {}),
}
COMPONENTS = (
    "sampling/grouping",
    "local (LT)",
    "local-global (LGT)",
    "global (GT)",
    "feature propagation",
    "head",
)


def build_model(variant: str):
    cfg_name, bb_over, head_over = VARIANTS[variant]
    overrides = {
        part: {"init_args": over} for part, over in (("backbone", bb_over), ("head", head_over)) if over
    }
    return model_from_configs(cfg_name, **overrides)


def load_points(dataset: str, n: int, samples: Path):
    """A real cloud as a one-cloud :class:`PointBatch` with ``n`` points."""
    import numpy as np

    from pc3d.data.batch import PointBatch

    rng = np.random.default_rng(0)
    if dataset == "scannet":
        from pc3d.data.scannet.preprocess import convert_scene
        from pc3d.data.scannet.raw import read_label_tsv

        root = samples / "scannet"
        arr = convert_scene(
            root / "scans" / "scene0000_00", read_label_tsv(root / "meta" / "scannetv2-labels.combined.tsv")
        )["arrays"]
        xyz = arr["coord"] @ arr["axis_align"][:3, :3].T + arr["axis_align"][:3, 3]
        idx = rng.choice(len(xyz), n, replace=len(xyz) < n)
        xyz = xyz[idx].astype(np.float32)
        feat = (xyz[:, 2] - np.percentile(xyz[:, 2], 0.99))[:, None]
    else:
        pts = np.fromfile(
            samples / "kitti" / "training" / "velodyne" / "000001.bin", dtype=np.float32
        ).reshape(-1, 4)
        pts = pts[(pts[:, 0] > 0) & (pts[:, 0] < 70.4) & (np.abs(pts[:, 1]) < 40)]
        idx = rng.choice(len(pts), n, replace=len(pts) < n)
        xyz, feat = pts[idx, :3], pts[idx, 3:4]
    return PointBatch.collate([{"coord": xyz, "feat": feat.astype(np.float32)}])


def instrument(model) -> ComponentTimer:
    from pc3d.models.pointformer_layers import block as block_mod
    from pc3d.models.pointformer_layers import feature_propagation as fp_mod

    timer = ComponentTimer(COMPONENTS)
    block_mod.sample = timer.wrap(block_mod.sample, "sampling/grouping")
    block_mod.group = timer.wrap(block_mod.group, "sampling/grouping")
    fp_mod.interpolate = timer.wrap(fp_mod.interpolate, "sampling/grouping")
    for b in model.backbone.blocks:
        timer.hook(b.local, "local (LT)")
        if b.local_global is not None:
            timer.hook(b.local_global, "local-global (LGT)")
        if b.glob is not None:
            timer.hook(b.glob, "global (GT)")
    for fp in model.backbone.fps:
        timer.hook(fp.mlp, "feature propagation")
    timer.hook(model.head, "head")
    return timer


def worker(variant: str, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dataset = variant.split("/")[0]
    batch = load_points(
        dataset, args.scannet_points if dataset == "scannet" else args.kitti_points, args.samples
    )
    model = build_model(variant).eval()
    params = sum(p.numel() for p in model.parameters())
    rss0 = rss_bytes()
    times = []
    with torch.no_grad():
        model(batch)  # warm-up (numba compilation, allocator)
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            model(batch)
            times.append(time.perf_counter() - t0)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss0
        timer = instrument(model)
        t0 = time.perf_counter()
        model(batch)
        total = time.perf_counter() - t0
    shares = timer.shares(total)
    return {"variant": variant, "params": params, "median_s": statistics.median(times), "peak_mb": peak / 2**20,
            "shares": shares}  # fmt: skip


def run_variant(variant: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "pc3d.tools.bench.models_det", "--worker", variant, "--repeats", str(args.repeats),
           "--threads", str(args.threads), "--scannet-points", str(args.scannet_points),
           "--kitti-points", str(args.kitti_points), "--samples", str(args.samples)]  # fmt: skip
    env = dict(os.environ)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"variant {variant} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_models.py det", description=__doc__.split("\n\n")[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--scannet-points", type=int, default=40000)
    p.add_argument("--kitti-points", type=int, default=16384)
    p.add_argument(
        "--samples", type=Path, default=Path(os.environ.get("PC3D_SAMPLES", REPO.parent / "shared" / "data"))
    )
    p.add_argument("--variants", nargs="*", default=list(VARIANTS), help="subset of " + ", ".join(VARIANTS))
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args)))
        return 0
    if not (args.samples / "scannet").is_dir() or not (args.samples / "kitti").is_dir():
        print(f"--samples: no scannet/ and kitti/ under {args.samples}", file=sys.stderr)
        return 2
    unknown = set(args.variants) - set(VARIANTS)
    if unknown:
        print(f"--variants: unknown {sorted(unknown)}; valid: {list(VARIANTS)}", file=sys.stderr)
        return 2
    rows = [run_variant(v, args) for v in args.variants]
    base: dict[str, dict] = {}
    print(f"threads={args.threads} repeats={args.repeats} (median eval forward, no grad, batch of 1 cloud)\n")
    print("| variant | points | params (M) | forward (s) | ratio | peak RSS (MB) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        ds = r["variant"].split("/")[0]
        b = base.setdefault(ds, r)
        pts = args.scannet_points if ds == "scannet" else args.kitti_points
        print(f"| {r['variant']} | {pts} | {r['params'] / 1e6:.2f} | {r['median_s']:.3f} | "
              f"{r['median_s'] / b['median_s']:.2f}x | {r['peak_mb']:.0f} |")  # fmt: skip
    print("\nShare of forward time per component (instrumented forward):\n")
    print("| variant | " + " | ".join(COMPONENTS) + " |")
    print("|---" * (len(COMPONENTS) + 1) + "|")
    for r in rows:
        print(f"| {r['variant']} | " + " | ".join(f"{100 * r['shares'][c]:.0f}%" for c in COMPONENTS) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
