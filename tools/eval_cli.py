"""``pc3d-eval``: official-protocol evaluation of result files.

Usage::

    pc3d-eval kitti --gt <label_2 dir> --pred <result dir> [--split <ids.txt>] [--json <out.json>]
                    [--classes Car Pedestrian Cyclist]

Prints the OpenPCDet-style table (AP R11 and R40 for bbox/bev/3d/aos, easy/moderate/hard);
``--json`` writes ``{class: {"bbox_R11"|…|"aos_R40": [easy, moderate, hard]}}`` (``null`` for AOS
when the results carry no alpha).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path


def read_result(path: Path) -> dict:
    """Read a KITTI result file: every non-empty line must have 16 columns (the 15 label columns + score).

    A 15-column line would otherwise be scored with score 0; it is a ``ValueError`` naming file and line.
    """
    from pc3d.data.kitti.labels import parse_label_text

    text = path.read_text()
    for lineno, line in enumerate(text.splitlines(), start=1):
        n = len(line.split())
        if n and n != 16:
            raise ValueError(
                f"{path}:{lineno}: expected 16 columns in a result file (15 label columns + score), got {n}"
            )
    return parse_label_text(text, source=str(path))


def _check_json_path(path: Path) -> None:
    """``ValueError`` naming ``--json`` when ``path`` cannot be written (checked before evaluating)."""
    if path.is_dir():
        raise ValueError(f"--json {path}: is a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ValueError(f"--json {path}: cannot create its directory ({e.strerror or e})") from e
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ValueError(f"--json {path}: not writable")


def evaluate_kitti_dirs(
    gt_dir: str | Path,
    pred_dir: str | Path,
    split: str | Path | None = None,
    classes: Sequence[str] = ("Car", "Pedestrian", "Cyclist"),
) -> dict[str, dict[str, list[float]]]:
    """Read ``<gt_dir>/<id>.txt`` labels and ``<pred_dir>/<id>.txt`` results and run :func:`kitti_eval`.

    Frames are the ids of ``split`` (one per line) or every label file in ``gt_dir``. A missing
    result file is an error naming it (write empty files for frames without detections).
    """
    from pc3d.data.kitti.labels import read_label
    from pc3d.data.kitti.preprocess import read_split
    from pc3d.metrics.kitti_eval import kitti_eval

    gt_dir, pred_dir = Path(gt_dir), Path(pred_dir)
    for name, d in (("--gt", gt_dir), ("--pred", pred_dir)):
        if not d.is_dir():
            raise ValueError(f"{name} {d}: not a directory")
    if split and not Path(split).is_file():
        raise ValueError(f"--split {split}: no such file")
    ids = read_split(split) if split else sorted(p.stem for p in gt_dir.glob("*.txt"))
    if not ids:
        raise ValueError(f"--gt {gt_dir}: no frames to evaluate")
    gt, dt = [], []
    for i in ids:
        gp, pp = gt_dir / f"{i}.txt", pred_dir / f"{i}.txt"
        if not gp.exists():
            raise ValueError(f"{gp}: missing label file for frame {i}")
        if not pp.exists():
            raise ValueError(
                f"{pp}: missing result file for frame {i} (write an empty file for no detections)"
            )
        gt.append(read_label(gp))
        dt.append(read_result(pp))
    return kitti_eval(gt, dt, classes)


def _to_json(results: dict) -> dict:
    return {
        c: {k: [None if math.isnan(x) else x for x in v] for k, v in r.items()} for c, r in results.items()
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pc3d-eval", description="Official-protocol evaluation of pc3d results.")
    sub = p.add_subparsers(dest="dataset", required=True)
    k = sub.add_parser("kitti", help="KITTI 3D object detection (AP R11/R40: bbox, bev, 3d, aos)")
    k.add_argument("--gt", required=True, help="directory of label_2 .txt files")
    k.add_argument("--pred", required=True, help="directory of result .txt files (16 columns)")
    k.add_argument("--split", default=None, help="file of frame ids to evaluate (default: every label file)")
    k.add_argument("--json", default=None, help="write the numbers as JSON to this path")
    k.add_argument("--classes", nargs="+", default=["Car", "Pedestrian", "Cyclist"])
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from pc3d.metrics.kitti_eval import format_results

    try:
        if args.json:
            _check_json_path(Path(args.json))
        results = evaluate_kitti_dirs(args.gt, args.pred, args.split, args.classes)
    except ValueError as e:
        print(f"pc3d-eval: error: {e}", file=sys.stderr)
        return 2
    print(format_results(results))
    if args.json:
        try:
            Path(args.json).write_text(json.dumps(_to_json(results), indent=2))
        except OSError as e:
            print(f"pc3d-eval: error: --json {args.json}: cannot write ({e.strerror or e})", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
