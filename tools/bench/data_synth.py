"""Benchmark of ``pc3d-data synth``: ``python -m pc3d.tools.bench_data synth [--frames N] [--scenes N]``.

Generates and writes KITTI frames and ScanNet rooms twice in the same run: serially in one process
(the baseline) and with ``--workers`` processes, and prints per-item medians, total wall time and the
speed-up. Targets: 100 KITTI frames <= 60 s and 20 ScanNet rooms <= 60 s on 2 cores.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from pc3d.data.synth.jobs import kitti_job, scannet_job
from pc3d.io import run_items
from pc3d.tools.data_synth import PRELOAD


def _measure(fn, jobs_for, workers: int) -> tuple[float, float, list[dict]]:
    tmp = Path(tempfile.mkdtemp(prefix="pc3d_bench_synth_"))
    try:
        t0 = time.perf_counter()
        jobs = jobs_for(tmp)
        items = [(str(i), job) for i, job in enumerate(jobs)]
        results = list(run_items(fn, items, workers if workers > 1 else 0, preload=PRELOAD))
        failed = [r for r in results if not r.ok]
        if failed:
            raise RuntimeError(f"bench item {failed[0].name} failed: {failed[0].error}")
        res = [r.value for r in results]
        wall = time.perf_counter() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return wall, statistics.median(r["seconds"] for r in res), res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench_data.py synth", description=__doc__.split("\n\n")[0])
    p.add_argument("--frames", type=int, default=100, help="KITTI frames (default 100)")
    p.add_argument("--scenes", type=int, default=20, help="ScanNet rooms (default 20)")
    p.add_argument("--workers", type=int, default=2, help="processes of the parallel run (default 2)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.frames < 1 or args.scenes < 1 or args.workers < 1:
        raise SystemExit("--frames, --scenes and --workers must be >= 1")
    cases = [
        (
            "kitti",
            args.frames,
            100,
            kitti_job,
            lambda d: [(i, args.seed, str(d), 2000, True) for i in range(args.frames)],
        ),
        (
            "scannet",
            args.scenes,
            20,
            scannet_job,
            lambda d: [(i, args.seed, str(d), 0.045) for i in range(args.scenes)],
        ),
    ]
    print(
        f"machine: {platform.machine()}, {len(os.sched_getaffinity(0))} usable cores, python {platform.python_version()}"
    )
    header = (
        f"{'dataset':8} {'items':>5} {'mode':>10} {'median s/item':>14} {'total s':>8} {'items/s':>8} "
        f"{'speed-up':>8} {'target':>16}"
    )
    print(header)
    print("-" * len(header))
    for name, n, target_n, fn, jobs_for in cases:
        base_wall, base_med, res = _measure(fn, jobs_for, 1)
        par_wall, par_med, _ = _measure(fn, jobs_for, args.workers)
        for mode, wall, med in (
            ("1 worker", base_wall, base_med),
            (f"{args.workers} workers", par_wall, par_med),
        ):
            proj = wall * target_n / n  # projected to the target's item count
            ok = f"{proj:5.1f}s/{target_n} {'ok' if proj <= 60.0 else 'MISSED'}"
            print(
                f"{name:8} {n:5d} {mode:>10} {med:14.3f} {wall:8.1f} {n / wall:8.2f} {base_wall / wall:7.2f}x {ok:>16}"
            )
        extra = sum(r.get("points", r.get("vertices", 0)) for r in res) / n
        print(f"{'':8} mean {'points' if name == 'kitti' else 'vertices'} per item: {extra:,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
