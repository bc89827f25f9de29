"""``pc3d infer`` benchmark: points per second and peak memory on a 1 M-point scan, MEEPO and Pointformer.

Scans (built from the real samples in ``$PC3D_SAMPLES``):

- indoor: scene0000_00 (81,369 vertices, colours, mesh normals) copied side by side on a 4 x 4
  grid of rooms -- 1,301,904 points, a building floor of about 40 x 35 m;
- LiDAR: the two KITTI sweeps (camera-FOV points, 38,840) each copied with 1 cm offsets up to
  1,000,000 points, read like a dense sweep; no FOV crop (no calibration given).

Models: the demo configurations (``meepo_demo.yaml``: MEEPO 16..96 channels, 6 cm voxels;
``pointformer_demo_kitti.yaml``: Pointformer + PointRCNN head, 4096 sampled points), randomly
initialised (speed does not depend on the weights).

Rows, each in a fresh subprocess (``--threads`` torch threads):

- ``dataset path``: the baseline -- the scan as one preprocessed scene through the datamodule's
  test pipeline and the task's voting (what ``pc3d predict`` does), without tiling;
- ``pc3d infer``: :meth:`predict` of the predictor ``pc3d.load_model`` returns (tiles of
  ``--tile-points``, 1 m overlap); ``+ normals`` also estimates the normals (Open3D).

Each row runs once on 20,000 points first (numba compilation, first allocations), then is timed
once on the whole scan. Peak memory is the process RSS sampled every 5 ms during the timed run
minus the RSS before it.

    python tools/bench_infer.py [--threads 2] [--tile-points 400000] [--rows seg,det]
        [--seg-rows "dataset path,pc3d infer"]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from pc3d.tools.bench.process_memory import rss_bytes

ROWS = {
    "seg": ("dataset path", "pc3d infer", "pc3d infer, 100k tiles", "pc3d infer + normals"),
    "det": ("dataset path", "pc3d infer"),
}
CONFIGS = {"seg": "meepo_demo.yaml", "det": "pointformer_demo_kitti.yaml"}


def _task(kind: str):
    """A randomly initialised task and its datamodule object from the demo config (no data read)."""
    import torch

    from pc3d.infer.checkpoint import TrainedTask
    from pc3d.tools.bench.model_configs import datamodule_from_configs, task_from_configs

    torch.manual_seed(0)
    module = task_from_configs(CONFIGS[kind])
    datamodule = datamodule_from_configs(CONFIGS[kind], root="unused")
    return TrainedTask(module=module.eval(), datamodule=datamodule, path=Path(CONFIGS[kind]))


def indoor_scan(samples: Path):
    import numpy as np
    import open3d as o3d

    from pc3d.data.scannet.preprocess import vertex_normals

    mesh = o3d.io.read_triangle_mesh(str(samples / "scannet/scans/scene0000_00/scene0000_00_vh_clean_2.ply"))
    v = np.asarray(mesh.vertices, dtype=np.float32)
    c = np.round(np.asarray(mesh.vertex_colors) * 255).astype(np.uint8)
    n = vertex_normals(v, np.asarray(mesh.triangles))
    size = v.max(0) - v.min(0) + 0.5
    coords = [v + np.array([i * size[0], j * size[1], 0], np.float32) for i in range(4) for j in range(4)]
    return np.concatenate(coords), np.tile(c, (16, 1)), np.tile(n, (16, 1))


def lidar_scan(samples: Path, total: int = 1_000_000):
    import numpy as np

    from pc3d.data.kitti import Calibration, fov_mask

    parts = []
    for fid in ("000001", "000002"):
        pts = np.fromfile(samples / f"kitti/training/velodyne/{fid}.bin", dtype=np.float32).reshape(-1, 4)
        calib = Calibration.from_file(samples / f"kitti/training/calib/{fid}.txt")
        parts.append(pts[fov_mask(calib, pts[:, :3], (1242, 375))])
    base = np.concatenate(parts)
    reps = -(-total // len(base))
    out = np.concatenate([base + np.float32([0.01 * k, 0.01 * k, 0, 0]) for k in range(reps)])[:total]
    return out


def worker(kind: str, row: str, args: argparse.Namespace) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    task = _task(kind)
    samples = Path(args.samples)
    if kind == "seg":
        from pc3d.data.scannet.dataset import SegTestPipeline, collate_fragments
        from pc3d.infer.segment import SegmentationPredictor

        coord, color, normal = indoor_scan(samples)
        tiles = 100_000 if "100k" in row else args.tile_points
        predictor = SegmentationPredictor(task, tile_points=tiles)
        dm = task.datamodule

        def run(n: int) -> None:
            c, rgb, nrm = coord[:n], color[:n], normal[:n]
            if row == "dataset path":
                data = {"coord": c, "color": rgb.astype(np.float32), "normal": nrm, "segment": np.full(n, -1)}
                frags = SegTestPipeline(dm.seg_aug.grid_size, dm.test_views)(
                    data, np.random.default_rng(0), {"scene_id": "scan"}
                )
                with torch.no_grad():
                    task.module.vote(collate_fragments([frags]))
            else:
                predictor.predict(c, colors=rgb, normals=None if "normals" in row else nrm)
    else:
        from pc3d.data.batch import PointBatch
        from pc3d.data.kitti.dataset import frame_points
        from pc3d.infer.detect import DetectionPredictor

        pts = lidar_scan(samples)
        coord = pts
        predictor = DetectionPredictor(task)
        dm = task.datamodule

        def run(n: int) -> None:
            if row == "dataset path":
                sel = frame_points(
                    pts[:n], dm.common["point_range"], dm.common["num_points"], np.random.default_rng(0)
                )
                with torch.no_grad():
                    task.module.predict_step(
                        PointBatch.collate([{"coord": sel[:, :3], "feat": sel[:, 3:4]}]), 0
                    )
            else:
                predictor.predict(pts[:n])

    run(20_000)  # warm-up: numba compilation and first-call allocations stay out of the numbers
    before = rss_bytes()
    peak, stop = [before], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss_bytes())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    run(len(coord))
    seconds = time.perf_counter() - t0
    stop.set()
    sampler.join()
    return {
        "kind": kind,
        "row": row,
        "points": len(coord),
        "seconds": seconds,
        "peak_gb": (peak[0] - before) / 1e9,
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench_infer.py", description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--tile-points", type=int, default=400_000, help="tile size of the pc3d infer row")
    p.add_argument("--rows", default="seg,det", help="which tables: seg, det or both")
    p.add_argument(
        "--seg-rows", help="rows of the seg table, comma separated (default: all; 'dataset path' first)"
    )
    p.add_argument("--samples", default=os.environ.get("PC3D_SAMPLES", "../shared/data"))
    p.add_argument("--worker", nargs=2, metavar=("KIND", "ROW"), help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker[0], args.worker[1], args)))
        return 0
    kinds = [k.strip() for k in args.rows.split(",") if k.strip()]
    bad = [k for k in kinds if k not in ROWS]
    if bad or not kinds:
        print(f"bench_infer.py: --rows: expected seg and/or det, got {args.rows!r}", file=sys.stderr)
        return 2
    if not (Path(args.samples) / "scannet").is_dir():
        print(f"bench_infer.py: --samples {args.samples}: no scannet/ sample folder", file=sys.stderr)
        return 2
    print(f"load average before: {os.getloadavg()[0]:.2f} (1 min), threads {args.threads}", flush=True)
    seg_rows = [r.strip() for r in args.seg_rows.split(",")] if args.seg_rows else list(ROWS["seg"])
    unknown = [r for r in seg_rows if r not in ROWS["seg"]]
    if unknown or seg_rows[:1] != ["dataset path"]:
        print(f"bench_infer.py: --seg-rows: start with 'dataset path', then some of {list(ROWS['seg'][1:])}",
              file=sys.stderr)  # fmt: skip
        return 2
    for kind in kinds:
        model = "MEEPO (meepo_demo.yaml)" if kind == "seg" else "Pointformer (pointformer_demo_kitti.yaml)"
        base = None
        for row in seg_rows if kind == "seg" else ROWS[kind]:
            cmd = [sys.executable, __file__, "--worker", kind, row, "--threads", str(args.threads),
                   "--tile-points", str(args.tile_points), "--samples", str(args.samples)]  # fmt: skip
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                print(f"{kind} / {row}: failed\n{res.stderr[-2000:]}", file=sys.stderr)
                return 1
            r = json.loads(res.stdout.strip().splitlines()[-1])
            if base is None:
                base = r
                print(f"\n{model}, {base['points']:,} points")
                print("| path | s | points/s | peak mem GB | time vs dataset path | memory vs dataset path |")
                print("|---|---|---|---|---|---|")
            print(
                f"| {r['row']} | {r['seconds']:.1f} | {r['points'] / r['seconds']:,.0f} | {r['peak_gb']:.2f} | "
                f"{r['seconds'] / base['seconds']:.2f}x | {r['peak_gb'] / max(base['peak_gb'], 1e-9):.2f}x |",
                flush=True,
            )
    print(f"\nload average after: {os.getloadavg()[0]:.2f} (1 min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
