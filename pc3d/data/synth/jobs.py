"""Per-item jobs of ``pc3d-data synth`` (top-level functions so that worker processes can import them)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from typing import Any

from tqdm import tqdm


def scannet_job(index: int, seed: int, scans_dir: str, spacing: float) -> dict[str, Any]:
    """Generate and write room ``index``; returns a small summary."""
    from pc3d.data.synth.scannet_rooms import generate_room, write_room

    t0 = time.perf_counter()
    room = generate_room(index, seed, spacing=spacing)
    write_room(room, scans_dir)
    sec = time.perf_counter() - t0
    return {"id": room.scene_id, "vertices": int(len(room.xyz)), "objects": len(room.groups), "seconds": sec}


def kitti_job(index: int, seed: int, training_dir: str, azimuth_steps: int, image: bool) -> dict[str, Any]:
    """Generate and write frame ``index``; returns a small summary."""
    from pc3d.data.synth.kitti_street import generate_frame, write_frame
    from pc3d.data.synth.lidar import HDL64

    t0 = time.perf_counter()
    lidar = HDL64(azimuth_steps=azimuth_steps)
    frame = generate_frame(index, seed, lidar=lidar, render_image=image, nthreads=1)
    write_frame(frame, training_dir)
    sec = time.perf_counter() - t0
    return {
        "id": frame.frame_id,
        "points": int(len(frame.points)),
        "labels": len(frame.labels),
        "seconds": sec,
    }


def _context():
    """A fork server that imports the generators once (workers fork from it, so they neither re-import
    torch/open3d nor inherit the caller's threads); spawn where fork servers do not exist."""
    try:
        ctx = get_context("forkserver")
    except ValueError:
        return get_context("spawn")
    ctx.set_forkserver_preload(["pc3d.data.synth.scannet_rooms", "pc3d.data.synth.kitti_street", "open3d"])
    return ctx


def run_jobs(
    fn: Callable[..., dict[str, Any]],
    arg_list: Iterable[tuple],
    workers: int,
    desc: str,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Run ``fn(*args)`` for every ``args`` on ``workers`` processes (inline when 1) with a progress bar.

    Results come back in input order; output never depends on ``workers``.
    """
    arg_list = list(arg_list)
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    results: list[dict[str, Any] | None] = [None] * len(arg_list)
    bar = tqdm(total=len(arg_list), desc=desc, unit="item", disable=not progress)
    try:
        if workers == 1 or len(arg_list) <= 1:
            for i, a in enumerate(arg_list):
                results[i] = fn(*a)
                bar.update()
        else:
            env_threads = os.environ.get("OMP_NUM_THREADS")
            os.environ["OMP_NUM_THREADS"] = "1"  # one thread per worker process
            try:
                with ProcessPoolExecutor(min(workers, len(arg_list)), mp_context=_context()) as ex:
                    futs = {ex.submit(fn, *a): i for i, a in enumerate(arg_list)}
                    for f in as_completed(futs):
                        results[futs[f]] = f.result()
                        bar.update()
            finally:
                if env_threads is None:
                    os.environ.pop("OMP_NUM_THREADS", None)
                else:
                    os.environ["OMP_NUM_THREADS"] = env_threads
    finally:
        bar.close()
    return [r for r in results if r is not None]
