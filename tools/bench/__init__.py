"""Benchmark sections dispatched by ``tools/bench_*.py``; each section module exposes ``main(argv) -> int``."""

from __future__ import annotations

import importlib
import sys


def dispatch(prog: str, sections: dict[str, str], argv: list[str] | None = None) -> int:
    """Run ``sections[argv[0]].main(argv[1:])``; print usage and return 2 on an unknown section."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in sections:
        print(f"usage: {prog} {{{','.join(sections)}}} [options]", file=sys.stderr)
        return 2
    return int(importlib.import_module(sections[argv[0]]).main(argv[1:]))
