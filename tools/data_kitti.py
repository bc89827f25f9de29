"""``pc3d-data kitti``: preprocess a KITTI object directory (see docs/data/kitti.md).

Imported by the ``pc3d-data`` dispatcher (``tools/data_cli.py``), which calls
:func:`add_arguments` on its ``kitti`` sub-parser and :func:`run` with the parsed arguments.
"""

from __future__ import annotations

import argparse
import sys


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 (0: in-process), got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--root", required=True, help="KITTI object dir with training/ (and testing/, ImageSets/)"
    )
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--workers", type=_non_negative_int, default=2, help="processes (0: in-process)")
    parser.add_argument("--overwrite", action="store_true", help="redo frames whose info file already exists")
    parser.add_argument("--no-progress", action="store_true", help="disable the progress bar")


def run(args: argparse.Namespace) -> int:
    """Returns 0 on success, 1 when some frames failed (listed on stderr and in ``<out>/errors.json``),
    2 on unusable arguments."""
    from pc3d.data.kitti.preprocess import preprocess

    try:
        summary = preprocess(args.root, args.out, args.workers, args.overwrite, progress=not args.no_progress)
    except ValueError as e:
        print(f"pc3d-data kitti: error: {e}", file=sys.stderr)
        return 2
    print(
        f"kitti: {summary['frames']} frames written to {args.out}; splits {summary['splits']} "
        f"from {summary['split_source']}"
    )
    for frame, msg in sorted(summary["errors"].items()):
        print(f"pc3d-data kitti: frame {frame} skipped: {msg}", file=sys.stderr)
    return 1 if summary["errors"] else 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="pc3d-data kitti", description=__doc__.splitlines()[0])
    add_arguments(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
