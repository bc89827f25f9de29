"""Output-folder guard: a tool never writes into, over or around its own inputs."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


class UsageError(ValueError):
    """An unusable command-line argument; the message is one line naming the argument."""


def _within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def check_output_dir(
    out: str | os.PathLike, inputs: Mapping[str, str | os.PathLike], arg: str = "--out"
) -> Path:
    """Refuse an output folder that is an existing file, or equals, contains or lies inside an input.

    ``inputs`` maps each input's argument name (``"--raw"``) to its path. Paths are compared after
    resolving symlinks, so a link into the input tree is caught too. Returns the resolved output
    folder; raises :class:`UsageError` otherwise.
    """
    out_path = Path(out)
    if out_path.exists() and not out_path.is_dir():
        raise UsageError(f"{arg} {out}: exists and is not a folder; expected an output folder")
    resolved = out_path.resolve()
    for name, inp in inputs.items():
        inp_resolved = Path(inp).resolve()
        if resolved == inp_resolved:
            raise UsageError(
                f"{arg} {out}: is the input folder {name} {inp}; choose a separate output folder"
            )
        if _within(inp_resolved, resolved):
            raise UsageError(
                f"{arg} {out}: contains the input folder {name} {inp}; choose an output folder outside it"
            )
        if _within(resolved, inp_resolved):
            raise UsageError(
                f"{arg} {out}: is inside the input folder {name} {inp}; choose an output folder outside it"
            )
    return resolved
