"""``pc3d-viz``: look at scenes, labels, predictions and boxes (interactive window or headless PNG).

Examples::

    pc3d-viz data/scannet/scans/scene0000_00                       # interactive window
    pc3d-viz data/scannet/scans/scene0000_00 --out room.png --view bev --color-by gt
    pc3d-viz kitti/training/velodyne/000001.bin --out car.png --view driver
    pc3d-viz predictions/ --out renders/ --side-by-side           # every .npz in a folder
    pc3d-viz scans/scene0000_00 --pred predictions/scene0000_00.npz --color-by error --out err.png
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pc3d.viz.camera import VIEWS
from pc3d.viz.geometry import BOX_MODES, COLOR_MODES

#: Default score threshold of predicted boxes: low-confidence boxes would bury the scene.
MIN_SCORE = 0.3


def _score(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a score in [0, 1], got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pc3d-viz",
        description="Show point clouds with labels, predictions and boxes: an Open3D window, or a PNG with --out.",
        epilog=(
            "INPUT: a preprocessed ScanNet scene folder (coord.npy ...), a raw ScanNet scan folder or its "
            "*_vh_clean_2.ply, a KITTI velodyne/<id>.bin (label_2/ and calib/ beside velodyne/ give the boxes), "
            "a prediction .npz, or a folder of those. Window keys: N/P scene, C colouring, V camera, B/G/F boxes, "
            "L captions, H help."
        ),
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="scene(s) to show")
    p.add_argument(
        "--pred", type=Path, help="prediction .npz (or folder of <scene>.npz) to overlay on the inputs"
    )
    p.add_argument(
        "--out",
        type=Path,
        help="write PNG(s) instead of opening a window: a .png file, or a folder for several scenes",
    )
    p.add_argument("--view", choices=VIEWS, default="oblique", help="camera preset (default: oblique)")
    p.add_argument(
        "--color-by", choices=COLOR_MODES, default=None, help="point colouring (default: gt if any, else rgb)"
    )
    p.add_argument("--side-by-side", action="store_true", help="ground truth | prediction in one image")
    p.add_argument(
        "--boxes", choices=BOX_MODES, default="auto", help="boxes to draw (auto follows --color-by)"
    )
    p.add_argument(
        "--box-color",
        choices=("source", "class"),
        default="source",
        help="GT green/pred magenta, or class colours",
    )
    p.add_argument(
        "--min-score",
        type=_score,
        default=MIN_SCORE,
        help=f"draw predicted boxes scoring at least this, in [0, 1] (default {MIN_SCORE}; 0 draws every box)",
    )
    p.add_argument("--width", type=int, default=960, help="image width in pixels")
    p.add_argument("--height", type=int, default=720, help="image height in pixels")
    p.add_argument(
        "--point-size", type=float, default=None, help="point size in pixels (default 3 indoor, 2 outdoor)"
    )
    p.add_argument("--no-annotate", action="store_true", help="no title, legend or box captions on PNGs")
    return p


def _default_color(scene) -> str:
    s = scene.with_box_point_labels()
    return "gt" if s.segment is not None else "rgb"


def _attach_predictions(scenes: list, pred: Path) -> list:
    from pc3d.viz.scene import load_npz, merge_predictions

    if not pred.exists():
        raise FileNotFoundError(f"--pred: not found: {pred}")
    if pred.is_file():
        if pred.suffix != ".npz":
            raise ValueError(f"--pred {pred}: expected a .npz prediction file or a folder of them")
        if len(scenes) != 1:
            raise ValueError(
                f"--pred {pred} is one file but there are {len(scenes)} inputs; pass a folder of <scene>.npz"
            )
        return [merge_predictions(scenes[0], _load_pred(pred, load_npz))]
    out = []
    for scene in scenes:
        f = pred / f"{scene.name}.npz"
        if not f.is_file():
            raise FileNotFoundError(f"--pred {pred}: no {f.name} for scene {scene.name!r}")
        out.append(merge_predictions(scene, _load_pred(f, load_npz)))
    return out


def _load_pred(path: Path, load_npz):
    import numpy as np

    with np.load(path, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    if "coord" in data:
        return load_npz(path)
    from pc3d.viz.scene import NPZ_KEYS

    unknown = sorted(set(data) - set(NPZ_KEYS))
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}; expected some of {list(NPZ_KEYS)}")
    return data


def _out_paths(out: Path, names: list[str]) -> list[Path]:
    if out.suffix.lower() == ".png":
        if len(names) == 1:
            return [out]
        return [out.with_name(f"{out.stem}_{n}.png") for n in names]
    if out.suffix:
        raise ValueError(f"--out {out}: expected a .png file or a folder")
    return [out / f"{n}.png" for n in names]


def _run(args: argparse.Namespace) -> int:
    from pc3d.viz.render import setup_headless_env

    setup_headless_env()
    from pc3d.viz.scene import expand_inputs, load_scene

    if args.width < 16 or args.height < 16:
        raise ValueError(f"--width/--height must be at least 16, got {args.width}x{args.height}")
    paths = expand_inputs(args.inputs)
    if args.out is None and args.pred is None and not args.side_by_side:
        return _interactive(args, paths)
    scenes = [load_scene(p) for p in paths]
    if args.pred is not None:
        scenes = _attach_predictions(scenes, args.pred)
    if args.out is None:
        if args.side_by_side:
            raise ValueError("--side-by-side needs --out (the window shows one colouring at a time; press C)")
        return _interactive(args, scenes)

    from pc3d.viz.render import Renderer, render_png

    panel_w = max(16, args.width // 2 - 2) if args.side_by_side else args.width
    with Renderer(panel_w, args.height, point_size=args.point_size) as renderer:
        for scene, out in zip(scenes, _out_paths(args.out, [s.name for s in scenes])):
            path = render_png(
                scene,
                out,
                view=args.view,
                color_by=args.color_by or _default_color(scene),
                width=args.width,
                height=args.height,
                side_by_side=args.side_by_side,
                boxes=args.boxes,
                box_color=args.box_color,
                min_score=args.min_score,
                annotate=not args.no_annotate,
                renderer=renderer,
            )
            print(path)
    return 0


def _interactive(args: argparse.Namespace, scenes: list) -> int:
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        raise RuntimeError("no display for the interactive window (DISPLAY is not set); use --out file.png")
    from pc3d.viz.interactive import run_viewer

    color = args.color_by or "gt"
    run_viewer(
        scenes,
        color_by=color,
        view=args.view,
        min_score=args.min_score,
        width=args.width,
        height=args.height,
        point_size=args.point_size,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``pc3d-viz``; returns the exit status (0 ok, 2 bad input, 1 rendering failed)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse already printed the usage and the error
        return int(e.code or 0)
    try:
        return _run(args)
    except (FileNotFoundError, ValueError) as e:
        print(f"pc3d-viz: error: {e}", file=sys.stderr)
        return 2
    except (RuntimeError, OSError) as e:
        print(f"pc3d-viz: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
