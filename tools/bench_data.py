"""Data benchmarks: ``python -m pc3d.tools.bench_data {synth,scannet,kitti} [options]``.

Each section prints a table of medians with ratios against a baseline measured in the same run.
"""

from __future__ import annotations

import sys

from pc3d.tools.bench import dispatch

SECTIONS = {
    "synth": "pc3d.tools.bench.data_synth",
    "scannet": "pc3d.tools.bench.data_scannet",
    "kitti": "pc3d.tools.bench.data_kitti",
}


def main(argv: list[str] | None = None) -> int:
    return dispatch("bench_data.py", SECTIONS, argv)


if __name__ == "__main__":
    sys.exit(main())
