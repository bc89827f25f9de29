"""Model benchmarks: ``python -m pc3d.tools.bench_models {seg,seg-demo,det} [options]``.

Each section prints a table of medians with ratios against a baseline measured in the same run.
"""

from __future__ import annotations

import sys

from pc3d.tools.bench import dispatch

SECTIONS = {
    "seg": "pc3d.tools.bench.models_seg",
    "seg-demo": "pc3d.tools.bench.models_seg_demo",
    "det": "pc3d.tools.bench.models_det",
}


def main(argv: list[str] | None = None) -> int:
    return dispatch("bench_models.py", SECTIONS, argv)


if __name__ == "__main__":
    sys.exit(main())
