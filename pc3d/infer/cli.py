"""``pc3d infer``: run a trained checkpoint on your own scans.

    pc3d infer --ckpt last.ckpt scans/ room.ply sweep.bin --out predictions/

INPUT is any mix of files and folders (searched recursively) of .ply, .pcd, .pts, .las, .laz,
KITTI .bin, .npy, .npz, .txt, .xyz and .csv. The checkpoint decides the task and the test-time
preprocessing (see :func:`pc3d.load_model`): labels per point (ScanNet segmentation), boxes in
axis-aligned rooms (ScanNet detection; ``--axis-align``) or boxes in LiDAR sweeps (KITTI). Each
scan prints one summary line; a scan that fails is reported and the others still run. Exit status: 0 all scans done, 1 some failed, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

from pc3d.infer.checkpoint import CheckpointError
from pc3d.infer.cloud import InputError
from pc3d.infer.plan import OutputPlan, plan_outputs


def build_parser() -> argparse.ArgumentParser:
    from pc3d.infer.readers import COLUMN_NAMES
    from pc3d.infer.segment import DEFAULT_OVERLAP, DEFAULT_TILE_POINTS

    p = argparse.ArgumentParser(
        prog="pc3d infer",
        description="Predict on point-cloud files with a pc3d checkpoint (segmentation labels or 3D boxes).",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="point-cloud files or folders of them")
    p.add_argument("--ckpt", required=True, help="checkpoint written by `pc3d fit`")
    p.add_argument("--out", required=True, help="output folder (created)")
    p.add_argument(
        "--columns",
        help=f"column names of .txt/.xyz/.csv/.npy files, e.g. x,y,z,i,r,g,b (names: {','.join(COLUMN_NAMES)}); "
        "default from the column count",
    )
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    seg = p.add_argument_group("segmentation")
    seg.add_argument(
        "--tile-points", type=int, default=DEFAULT_TILE_POINTS,
        help=f"largest number of points run at once; larger scans run in overlapping tiles (default {DEFAULT_TILE_POINTS})",
    )  # fmt: skip
    seg.add_argument(
        "--overlap", type=float, default=DEFAULT_OVERLAP,
        help=f"tile overlap in metres; points there get votes from each tile (default {DEFAULT_OVERLAP:g})",
    )  # fmt: skip
    seg.add_argument(
        "--missing-color", choices=("error", "gray"), default="error",
        help="scans without colours (segmentation, and indoor detection trained with colour): fail (default) "
        "or use constant grey",
    )  # fmt: skip
    indoor = p.add_argument_group("indoor detection")
    indoor.add_argument(
        "--axis-align",
        help="ScanNet <scene>.txt whose axisAlignment aligns every scan (default: <dir>/<dir>.txt beside a "
        "scan <dir>/<dir>*.*, as in ScanNet's scans/<scene>/; without one the scan is taken as "
        "axis-aligned, z up); boxes are given in the aligned frame",
    )
    det = p.add_argument_group("detection (KITTI)")
    det.add_argument(
        "--calib",
        help="KITTI calib file for every scan (default: <root>/calib/<id>.txt beside <root>/velodyne/<id>.bin); "
        "with it the sweep is cropped to the camera view and KITTI result files are written",
    )
    det.add_argument(
        "--image-size", type=int, nargs=2, metavar=("W", "H"),
        help="camera image size for the FOV crop (default: image_2/<id>.png's, else 1242 375)",
    )  # fmt: skip
    det.add_argument(
        "--missing-intensity", type=float,
        help="reflectance for scans without one, in [0, 1] (default: such scans fail)",
    )  # fmt: skip
    det.add_argument(
        "--min-score",
        type=float,
        default=0.0,
        help="drop boxes below this score, both detection kinds (default 0)",
    )
    viz = p.add_argument_group("pictures")
    viz.add_argument("--render", action="store_true", help="also write <name>.png (headless pc3d-viz)")
    viz.add_argument(
        "--view", default="oblique", choices=("oblique", "bev", "driver"), help="camera of --render"
    )
    viz.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exit_:
        return int(exit_.code or 0)
    if args.tile_points < 1000 or args.overlap < 0:
        return _usage(parser, "--tile-points must be >= 1000 and --overlap >= 0")
    if args.missing_intensity is not None and not 0.0 <= args.missing_intensity <= 1.0:
        return _usage(
            parser, f"--missing-intensity: expected a value in [0, 1], got {args.missing_intensity}"
        )
    if not Path(args.ckpt).is_file():
        return _usage(parser, f"--ckpt {args.ckpt}: no such file")
    if args.calib is not None and not Path(args.calib).is_file():
        return _usage(parser, f"--calib {args.calib}: no such file")
    if args.axis_align is not None and not Path(args.axis_align).is_file():
        return _usage(parser, f"--axis-align {args.axis_align}: no such file")
    try:
        plan = plan_outputs(args.inputs, args.out)
    except InputError as err:
        return _usage(parser, str(err))
    try:
        model = _load(args)
    except (CheckpointError, InputError, ValueError) as err:
        return _usage(parser, str(err))
    return run(model, plan, args)


def _usage(parser: argparse.ArgumentParser, message: str) -> int:
    parser.print_usage(sys.stderr)
    print(f"pc3d infer: error: {message}", file=sys.stderr)
    return 2


def _load(args: argparse.Namespace):
    from pc3d.infer.api import predictor_for, task_kind
    from pc3d.infer.checkpoint import load_trained_task

    task = load_trained_task(args.ckpt)
    kind = task_kind(task)
    if kind == "segmentation":
        options = {
            "tile_points": args.tile_points,
            "overlap": args.overlap,
            "missing_color": args.missing_color,
        }
    elif kind == "indoor-detection":
        options = {"missing_color": args.missing_color}
    else:
        options = {"missing_intensity": args.missing_intensity}
    return predictor_for(task, device=args.device, **options)


def run(model, plan: OutputPlan, args: argparse.Namespace) -> int:
    """Predict and write every planned scan; return the exit status (0 or 1)."""
    from tqdm import tqdm

    from pc3d.infer.readers import read_cloud

    print(f"pc3d infer: {args.ckpt}: {model.describe()}", flush=True)
    failed = 0
    renderer = None
    bar = tqdm(plan.items, unit="scan", disable=args.no_progress, file=sys.stderr, dynamic_ncols=True)
    for item in bar:
        bar.set_description(item.source.name)
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                cloud = read_cloud(item.source, args.columns)
                result, extra = _predict(model, cloud, item.source, args, bar)
            written = _write(model, item, cloud, result, args)
            if args.render:
                from pc3d.infer.writers import render_result

                if renderer is None:
                    from pc3d.viz.render import Renderer

                    renderer = Renderer(960, 720)
                written.append(render_result(item.base, cloud, result, args.view, args.min_score, renderer))
        except (InputError, OSError, ValueError, RuntimeError) as err:
            failed += 1
            tqdm.write(f"{item.source}: FAILED: {err}", file=sys.stderr)
            continue
        notes = [str(w.message).split(": ", 1)[-1] for w in caught if "NaN" in str(w.message)]
        notes += list(result.notes) + extra
        tqdm.write(
            f"{item.source}: {_summary(model, cloud, result)} in {time.perf_counter() - t0:.1f} s"
            + (f" ({'; '.join(notes)})" if notes else "")
            + f" -> {', '.join(str(p) for p in written)}"
        )
    bar.close()
    if renderer is not None:
        renderer.close()
    done = len(plan.items) - failed
    print(f"pc3d infer: {done} of {len(plan.items)} scan(s) done, {failed} failed; outputs in {plan.out}")
    return 1 if failed else 0


def _predict(model, cloud, source: Path, args, bar):
    if model.kind == "segmentation":

        def progress(done: int, total: int) -> None:
            if total > 1:
                bar.set_postfix_str(f"tile {done}/{total}")

        return model.predict(cloud, progress=progress), []
    if model.kind == "indoor-detection":
        from pc3d.infer.detect_indoor import find_scannet_alignment

        align = args.axis_align or find_scannet_alignment(source)
        extra = [f"axis alignment {align}"] if align is not None and not args.axis_align else []
        return model.predict(cloud, axis_align=align), extra
    from pc3d.infer.detect import find_kitti_calib

    calib, image_size = (args.calib, None) if args.calib else find_kitti_calib(source)
    image_size = tuple(args.image_size) if args.image_size else image_size
    extra = [f"calib {calib}"] if calib is not None and not args.calib else []
    result = model.predict(cloud, calib=calib, image_size=image_size)
    return result, extra


def _write(model, item, cloud, result, args) -> list[Path]:
    from pc3d.infer.writers import write_detection, write_segmentation

    if model.kind == "segmentation":
        return write_segmentation(item.base, cloud, result)
    if args.min_score > 0:
        keep = result.scores >= args.min_score
        result.boxes, result.scores, result.labels = (
            result.boxes[keep],
            result.scores[keep],
            result.labels[keep],
        )
    return write_detection(item.base, item.kitti_dir, cloud, result)


def _summary(model, cloud, result) -> str:
    n = f"{cloud.num_points:,} points"
    if model.kind == "segmentation":
        import numpy as np

        labels = result.labels[result.labels >= 0]
        counts = np.bincount(labels, minlength=len(result.class_names))
        top = np.argsort(-counts)[:3]
        share = ", ".join(
            f"{result.class_names[i]} {counts[i] / max(len(labels), 1):.0%}" for i in top if counts[i]
        )
        return f"{n} labelled ({share})"
    per_class = {}
    for lab in result.labels.tolist():
        per_class[result.class_names[lab]] = per_class.get(result.class_names[lab], 0) + 1
    listing = ", ".join(f"{k} {v}" for k, v in per_class.items()) or "none"
    return f"{n}, {len(result.boxes)} boxes ({listing})"


if __name__ == "__main__":
    sys.exit(main())
