"""``pc3d-data synth``: write synthetic ScanNet v2 rooms or KITTI street frames in the raw dataset formats.

Usage::

    pc3d-data synth scannet --out DIR --scenes N --seed S [--workers W]
    pc3d-data synth kitti --out DIR --frames N --seed S [--workers W]

ScanNet output: ``DIR/scans/sceneXXXX_00/`` (the five raw files of each scan), ``DIR/meta/`` with
``scannetv2-labels.combined.tsv`` (the rows of the categories used) and ``scannetv2_{train,val,test}.txt``.
KITTI output: ``DIR/training/{velodyne,calib,label_2,image_2}/%06d.*`` and ``DIR/ImageSets/{train,val}.txt``.
The same seed gives byte-identical files whatever the number of workers.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pc3d.data.synth.fileio import write_text_atomic
from pc3d.data.synth.jobs import kitti_job, run_jobs, scannet_job


def _default_workers() -> int:
    return max(
        1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    )


def _positive(name: str):
    def parse(v: str) -> int:
        try:
            n = int(v)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {v!r}") from None
        if n < 1:
            raise argparse.ArgumentTypeError(f"{name} must be >= 1, got {n}")
        return n

    return parse


def _fraction(v: str) -> float:
    f = float(v)
    if not 0.0 <= f < 1.0:
        raise argparse.ArgumentTypeError(f"--val-fraction must be in [0, 1), got {f}")
    return f


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``scannet`` / ``kitti`` sub-commands to ``parser``."""
    sub = parser.add_subparsers(dest="synth_dataset", required=True, metavar="{scannet,kitti}")
    sn = sub.add_parser("scannet", help="indoor rooms in the ScanNet v2 raw scan format")
    sn.add_argument("--out", type=Path, required=True, help="output root (gets scans/ and meta/)")
    sn.add_argument("--scenes", type=_positive("--scenes"), default=20, help="number of rooms (default 20)")
    sn.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sn.add_argument("--workers", type=_positive("--workers"), default=_default_workers(), help="processes")
    sn.add_argument("--spacing", type=float, default=0.045, help="mesh edge length in m (default 0.045)")
    sn.add_argument("--val-fraction", type=_fraction, default=0.2, help="share of rooms in the val split")
    sn.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    kt = sub.add_parser("kitti", help="street scenes in the KITTI object format (HDL-64E LiDAR)")
    kt.add_argument("--out", type=Path, required=True, help="output root (gets training/ and ImageSets/)")
    kt.add_argument(
        "--frames", type=_positive("--frames"), default=100, help="number of frames (default 100)"
    )
    kt.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    kt.add_argument("--workers", type=_positive("--workers"), default=_default_workers(), help="processes")
    kt.add_argument(
        "--azimuth-steps", type=_positive("--azimuth-steps"), default=2000, help="LiDAR firings per turn"
    )
    kt.add_argument("--no-image", action="store_true", help="write black image_2 files (faster)")
    kt.add_argument("--val-fraction", type=_fraction, default=0.2, help="share of frames in the val split")
    kt.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _split(n: int, val_fraction: float) -> tuple[list[int], list[int]]:
    """Deterministic split: every k-th item goes to val (k = round(1 / val_fraction)); val stays empty
    for a single item."""
    if val_fraction <= 0 or n < 2:
        return list(range(n)), []
    k = max(2, round(1.0 / val_fraction))
    val = [i for i in range(n) if i % k == k - 1] or [n - 1]
    train = [i for i in range(n) if i not in set(val)]
    return train, val


def run_scannet(args: argparse.Namespace) -> int:
    from pc3d.data.synth.scannet_catalog import tsv_text
    from pc3d.data.synth.scannet_rooms import used_raw_categories

    if args.scenes > 10000:
        raise ValueError(f"--scenes: at most 10000 scene ids sceneXXXX_00 exist, got {args.scenes}")
    if not 0.01 <= args.spacing <= 0.5:
        raise ValueError(f"--spacing must be in [0.01, 0.5] m, got {args.spacing}")
    out = Path(args.out)
    scans = out / "scans"
    scans.mkdir(parents=True, exist_ok=True)
    jobs = [(i, args.seed, str(scans), args.spacing) for i in range(args.scenes)]
    res = run_jobs(scannet_job, jobs, args.workers, "synth scannet", not args.no_progress)
    ids = [r["id"] for r in res]
    train, val = _split(len(ids), args.val_fraction)
    meta = out / "meta"
    write_text_atomic(meta / "scannetv2-labels.combined.tsv", tsv_text(used_raw_categories()))
    write_text_atomic(meta / "scannetv2_train.txt", "".join(ids[i] + "\n" for i in train))
    write_text_atomic(meta / "scannetv2_val.txt", "".join(ids[i] + "\n" for i in val))
    write_text_atomic(meta / "scannetv2_test.txt", "")
    nv = sum(r["vertices"] for r in res)
    print(f"wrote {len(ids)} rooms ({nv} vertices) to {scans}; splits: {len(train)} train / {len(val)} val")
    return 0


def run_kitti(args: argparse.Namespace) -> int:
    out = Path(args.out)
    training = out / "training"
    training.mkdir(parents=True, exist_ok=True)
    jobs = [(i, args.seed, str(training), args.azimuth_steps, not args.no_image) for i in range(args.frames)]
    res = run_jobs(kitti_job, jobs, args.workers, "synth kitti", not args.no_progress)
    ids = [r["id"] for r in res]
    train, val = _split(len(ids), args.val_fraction)
    write_text_atomic(out / "ImageSets" / "train.txt", "".join(ids[i] + "\n" for i in train))
    write_text_atomic(out / "ImageSets" / "val.txt", "".join(ids[i] + "\n" for i in val))
    npts = sum(r["points"] for r in res)
    print(
        f"wrote {len(ids)} frames ({npts} points) to {training}; splits: {len(train)} train / {len(val)} val"
    )
    return 0


def run(args: argparse.Namespace) -> int:
    """Execute the parsed ``synth`` command; returns the exit code (2 on unusable arguments)."""
    try:
        if Path(args.out).exists() and not Path(args.out).is_dir():
            raise ValueError(f"--out {args.out} exists and is not a folder")
        if args.synth_dataset == "scannet":
            return run_scannet(args)
        if args.synth_dataset == "kitti":
            return run_kitti(args)
        raise ValueError(f"unknown synth dataset {args.synth_dataset!r}; expected 'scannet' or 'kitti'")
    except ValueError as e:
        print(f"pc3d-data synth: error: {e}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pc3d-data synth", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
