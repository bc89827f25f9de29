"""``pc3d-data``: dataset preparation.

Subcommands (each implemented in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``):

- ``pc3d-data scannet``: raw ScanNet v2 scans → pc3d's per-scene ``.npy`` format.
- ``pc3d-data kitti``: KITTI object → FOV-reduced points, info files, GT database.
- ``pc3d-data synth {scannet,kitti}``: synthetic scenes in the datasets' own raw formats.
"""

from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS = {
    "scannet": ("pc3d.tools.data_scannet", "preprocess raw ScanNet v2 scans"),
    "kitti": ("pc3d.tools.data_kitti", "preprocess the KITTI object dataset"),
    "synth": ("pc3d.tools.data_synth", "generate synthetic ScanNet rooms or KITTI frames"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pc3d-data", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="{" + ",".join(SUBCOMMANDS) + "}")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = importlib.import_module(module_name)
        sub_parser = sub.add_parser(name, help=help_text, description=(module.__doc__ or help_text).strip())
        module.add_arguments(sub_parser)
        sub_parser.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point of ``pc3d-data``."""
    args = build_parser().parse_args(argv)
    return int(args._run(args))


if __name__ == "__main__":
    sys.exit(main())
