"""``pc3d-data synth``: write synthetic ScanNet v2 rooms or KITTI street frames in the raw dataset formats.

Usage::

    pc3d-data synth scannet --out DIR --scenes N --seed S [--workers W]
    pc3d-data synth kitti --out DIR --frames N --seed S [--workers W]

ScanNet output: ``DIR/scans/sceneXXXX_00/`` (the five raw files of each scan), ``DIR/meta/`` with
``scannetv2-labels.combined.tsv`` (the rows of the categories used) and ``scannetv2_{train,val,test}.txt``.
KITTI output: ``DIR/training/{velodyne,calib,label_2,image_2}/%06d.*`` and ``DIR/ImageSets/{train,val}.txt``.
The same seed gives byte-identical files whatever the number of workers. Every file is written
atomically; ``DIR`` must be new, empty, or an earlier output of this command (marked by
``DIR/.pc3d-synth.json``), so real data is never overwritten. An item whose worker dies is
reported by name and the exit status is 1; the split files then list only the items written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from tqdm import tqdm

from pc3d.data.synth.jobs import kitti_job, scannet_job
from pc3d.io import UsageError, clean_leftovers, run_items, write_json, write_text

MARKER = ".pc3d-synth.json"
PRELOAD = ["pc3d.data.synth.scannet_rooms", "pc3d.data.synth.kitti_street", "open3d"]


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


def claim_output(out: Path, dataset: str) -> None:
    """Refuse an ``--out`` holding anything this command did not write; then mark it as its own."""
    marker = out / MARKER
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        try:
            owner = json.loads(marker.read_text(encoding="utf-8")).get("dataset")
        except (OSError, ValueError, AttributeError):
            raise UsageError(
                f"--out {out}: is not empty and was not written by pc3d-data synth (no {MARKER}); "
                "choose a new or empty folder"
            ) from None
        if owner != dataset:
            raise UsageError(f"--out {out}: holds synthetic {owner!r} data, not {dataset!r}")
    write_json(marker, {"tool": "pc3d-data synth", "dataset": dataset}, indent=1)


def _clean(folders: list[Path]) -> None:
    for folder in folders:
        clean_leftovers(folder)


def _run(fn, jobs: list[tuple], names: list[str], workers: int, desc: str, progress: bool):
    """Results of the items that succeeded, in input order, and ``{name: error}`` of the others."""
    items = list(zip(names, jobs))
    ok: dict[str, dict] = {}
    failed: dict[str, str] = {}
    bar = tqdm(total=len(items), desc=desc, unit="item", disable=not progress)
    try:
        for r in run_items(fn, items, workers if workers > 1 else 0, preload=PRELOAD):
            if r.ok:
                ok[r.name] = r.value
            else:
                failed[r.name] = r.error
            bar.update()
    finally:
        bar.close()
    return [ok[n] for n in names if n in ok], failed


def _report(failed: dict[str, str]) -> int:
    for name, err in sorted(failed.items()):
        print(f"pc3d-data synth: {name} failed: {err}", file=sys.stderr)
    return 1 if failed else 0


def run_scannet(args: argparse.Namespace) -> int:
    from pc3d.data.synth.scannet_catalog import tsv_text
    from pc3d.data.synth.scannet_rooms import used_raw_categories

    if args.scenes > 10000:
        raise UsageError(
            f"--scenes: expected at most 10000 (ids scene0000_00 to scene9999_00), got {args.scenes}"
        )
    if not 0.01 <= args.spacing <= 0.5:
        raise UsageError(f"--spacing must be in [0.01, 0.5] m, got {args.spacing}")
    out = Path(args.out)
    claim_output(out, "scannet")
    scans, meta = out / "scans", out / "meta"
    scans.mkdir(parents=True, exist_ok=True)
    _clean([out, scans, meta, *(p for p in scans.iterdir() if p.is_dir())])
    jobs = [(i, args.seed, str(scans), args.spacing) for i in range(args.scenes)]
    names = [f"scene{i:04d}_00" for i in range(args.scenes)]
    res, failed = _run(scannet_job, jobs, names, args.workers, "synth scannet", not args.no_progress)
    ids = [r["id"] for r in res]
    train, val = _split(len(ids), args.val_fraction)
    write_text(meta / "scannetv2-labels.combined.tsv", tsv_text(used_raw_categories()))
    write_text(meta / "scannetv2_train.txt", "".join(ids[i] + "\n" for i in train))
    write_text(meta / "scannetv2_val.txt", "".join(ids[i] + "\n" for i in val))
    write_text(meta / "scannetv2_test.txt", "")
    nv = sum(r["vertices"] for r in res)
    print(f"wrote {len(ids)} rooms ({nv} vertices) to {scans}; splits: {len(train)} train / {len(val)} val")
    return _report(failed)


def run_kitti(args: argparse.Namespace) -> int:
    out = Path(args.out)
    claim_output(out, "kitti")
    training = out / "training"
    training.mkdir(parents=True, exist_ok=True)
    subs = ("velodyne", "calib", "label_2", "image_2")
    _clean([out, out / "ImageSets", *(training / s for s in subs)])
    jobs = [(i, args.seed, str(training), args.azimuth_steps, not args.no_image) for i in range(args.frames)]
    names = [f"{i:06d}" for i in range(args.frames)]
    res, failed = _run(kitti_job, jobs, names, args.workers, "synth kitti", not args.no_progress)
    ids = [r["id"] for r in res]
    train, val = _split(len(ids), args.val_fraction)
    write_text(out / "ImageSets" / "train.txt", "".join(ids[i] + "\n" for i in train))
    write_text(out / "ImageSets" / "val.txt", "".join(ids[i] + "\n" for i in val))
    npts = sum(r["points"] for r in res)
    print(
        f"wrote {len(ids)} frames ({npts} points) to {training}; splits: {len(train)} train / {len(val)} val"
    )
    return _report(failed)


def run(args: argparse.Namespace) -> int:
    """Execute the parsed ``synth`` command; returns the exit code (1: some items failed, 2: unusable
    arguments)."""
    try:
        if args.synth_dataset == "scannet":
            return run_scannet(args)
        if args.synth_dataset == "kitti":
            return run_kitti(args)
        raise UsageError(f"unknown synth dataset {args.synth_dataset!r}; expected 'scannet' or 'kitti'")
    except UsageError as e:
        print(f"pc3d-data synth: error: {e}", file=sys.stderr)
        return 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pc3d-data synth", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
