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
import warnings
from collections.abc import Sequence
from pathlib import Path

from pc3d.viz.camera import VIEWS
from pc3d.viz.geometry import BOX_MODES, COLOR_MODES
from pc3d.viz.scene import NonFiniteWarning

#: Default score threshold of predicted boxes: low-confidence boxes would bury the scene.
MIN_SCORE = 0.3


def score_arg(text: str) -> float:
    """argparse type of a box score threshold in [0, 1]."""
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
        type=score_arg,
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


def _check_pred(pred: Path, n_inputs: int) -> None:
    """``--pred`` is a ``.npz`` (for one input) or a folder of ``<scene>.npz``."""
    if not pred.exists():
        raise FileNotFoundError(f"--pred: not found: {pred}")
    if pred.is_file():
        if pred.suffix != ".npz":
            raise ValueError(f"--pred {pred}: expected a .npz prediction file or a folder of them")
        if n_inputs != 1:
            raise ValueError(
                f"--pred {pred} is one file but there are {n_inputs} inputs; pass a folder of <scene>.npz"
            )


def _attach_predictions(scene, pred: Path):
    """``scene`` with the predictions of ``pred`` (the file, or ``<pred>/<scene name>.npz``)."""
    from pc3d.viz.scene import merge_predictions

    f = pred if pred.is_file() else pred / f"{scene.name}.npz"
    if not f.is_file():
        raise FileNotFoundError(f"--pred {pred}: no {f.name} for scene {scene.name!r}")
    return merge_predictions(scene, _load_pred(f))


def _load_pred(path: Path):
    """A prediction file: a :class:`Scene` when it has its own ``coord``, else its arrays."""
    from pc3d.viz.scene import NPZ_KEYS, read_npz, scene_from_dict

    data = read_npz(path)
    if "coord" in data:
        return scene_from_dict(data, name=path.stem, source=str(path))
    unknown = sorted(set(data) - set(NPZ_KEYS))
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}; expected some of {list(NPZ_KEYS)}")
    return data


def _check_out(out: Path) -> None:
    """``--out`` is a ``.png`` file name or a folder (not a file) in a place that can be written."""
    if out.suffix.lower() == ".png":
        if out.is_dir():
            raise ValueError(
                f"--out {out}: is a directory; expected a .png file name (or a folder without .png)"
            )
        folder = out.parent
    elif out.suffix:
        raise ValueError(f"--out {out}: expected a .png file or a folder")
    else:
        if out.exists() and not out.is_dir():
            raise ValueError(f"--out {out}: is a file; expected a folder for the PNGs (or a .png file name)")
        folder = out
    probe = folder
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise ValueError(f"--out {out}: {probe} is a file, so the folder {folder} cannot be created")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ValueError(f"--out {out}: cannot write into {probe} (permission denied)")


def _out_paths(out: Path, names: list[str]) -> list[Path]:
    """The PNG of each scene: ``out`` itself for one scene and a ``.png`` name, else
    ``<out stem>_<name>.png`` or ``out/<name>.png``; ``ValueError`` when two scenes would share one."""
    if out.suffix.lower() == ".png":
        paths = [out] if len(names) == 1 else [out.with_name(f"{out.stem}_{n}.png") for n in names]
    else:
        paths = [out / f"{n}.png" for n in names]
    seen: set[Path] = set()
    for path, name in zip(paths, names):
        if path in seen:
            raise ValueError(f"--out {out}: two scenes are named {name!r} and would both write {path}")
        if path.is_dir():
            raise ValueError(f"--out {out}: {path} is a directory; expected a .png file there")
        seen.add(path)
    return paths


def _run(args: argparse.Namespace) -> int:
    from pc3d.viz.render import setup_headless_env

    setup_headless_env()
    from pc3d.viz.scene import expand_inputs, load_scene

    if args.width < 16 or args.height < 16:
        raise ValueError(f"--width/--height must be at least 16, got {args.width}x{args.height}")
    if args.out is not None:
        _check_out(args.out)
    paths = expand_inputs(args.inputs)
    if args.out is None and args.pred is None and not args.side_by_side:
        return _interactive(args, paths)
    if args.pred is not None:
        _check_pred(args.pred, len(paths))
    if args.out is None and args.side_by_side:
        raise ValueError("--side-by-side needs --out (the window shows one colouring at a time; press C)")

    scenes, failed = [], 0
    for path in paths:  # one unreadable scene of several fails alone; a single input is a bad argument
        try:
            scene = load_scene(path)
            scenes.append(scene if args.pred is None else _attach_predictions(scene, args.pred))
        except (FileNotFoundError, ValueError) as e:
            if len(paths) == 1:
                raise
            print(f"pc3d-viz: error: {e}", file=sys.stderr)
            failed += 1
    if args.out is None:
        return _interactive(args, scenes) or (1 if failed else 0)

    from pc3d.viz.render import Renderer, render_png

    outs = _out_paths(args.out, [s.name for s in scenes])
    panel_w = max(16, args.width // 2 - 2) if args.side_by_side else args.width
    with Renderer(panel_w, args.height, point_size=args.point_size) as renderer:
        for scene, out in zip(scenes, outs):
            try:
                written = render_png(
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
            except ValueError as e:
                if len(scenes) == 1 and not failed:
                    raise
                print(f"pc3d-viz: error: {e}", file=sys.stderr)
                failed += 1
                continue
            print(written)
    if failed:
        print(f"pc3d-viz: {failed} of {len(paths)} scenes failed", file=sys.stderr)
        return 1
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


def _print_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"pc3d-viz: warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``pc3d-viz``; returns the exit status: 0 ok; 2 bad arguments (options, ``--out``,
    ``--pred``, a missing input, or the only input unreadable); 1 when some of several scenes could
    not be read or rendering failed. Dropped NaN/inf points are reported as one warning line each."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse already printed the usage and the error
        return int(e.code or 0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", NonFiniteWarning)
            warnings.showwarning = _print_warning
            return _run(args)
    except (FileNotFoundError, ValueError) as e:
        print(f"pc3d-viz: error: {e}", file=sys.stderr)
        return 2
    except (RuntimeError, OSError) as e:
        print(f"pc3d-viz: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
