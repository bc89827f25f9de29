"""Per-item jobs of ``pc3d-data synth`` (top-level functions so that worker processes can import them)."""

from __future__ import annotations

import time
from typing import Any


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
