"""Which scans ``pc3d infer`` reads and where each one's outputs go."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path

from pc3d.infer.cloud import InputError
from pc3d.infer.readers import SUFFIXES

#: What :mod:`pc3d.infer.writers` appends to an output base path.
OUTPUT_SUFFIXES = (".labels.npy", ".labels.ply", ".json", ".png")

#: Files a folder search passes over although their suffix is a point-cloud format: a ScanNet scan
#: folder's meta file (``<scene>.txt``: axis alignment, not points) and labelled meshes
#: (ScanNet's ``*_vh_clean_2.labels.ply``, pc3d's ``*.labels.ply`` outputs). Named directly, they are read.
_SIDECAR = re.compile(r"^scene\d{4}_\d{2}\.txt$|\.labels\.ply$", re.IGNORECASE)


@dataclasses.dataclass
class PlanItem:
    """One scan: its file, the base path of its outputs and the folder of its KITTI result file."""

    source: Path
    base: Path
    kitti_dir: Path


@dataclasses.dataclass
class OutputPlan:
    out: Path
    items: list[PlanItem]


def _is_within(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def plan_outputs(inputs: Sequence[str | Path], out: str | Path) -> OutputPlan:
    """Expand ``inputs`` (files, and supported files found recursively in folders, leaving out
    anything under ``out``, hidden files and ScanNet's meta and labelled-mesh files) and give each a distinct output base under ``out``: ``<out>/<stem>``
    for a file named directly, ``<out>/<path within the folder without suffix>`` for a file found in
    a folder; names that would clash get ``_<suffix>`` (then ``_2``, ``_3``...) appended.

    Raises:
        InputError: a missing input, a folder without scans, no scans at all, ``out`` being a
            file, or an output that would overwrite an input.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder")
    out_abs = out.resolve()
    found: list[tuple[Path, Path]] = []  # (file, relative output name without suffix)
    for p in map(Path, inputs):
        if p.is_dir():
            files = sorted(
                f
                for f in p.rglob("*")
                if f.is_file()
                and f.suffix.lower() in SUFFIXES
                and not f.name.startswith(".")
                and not _SIDECAR.search(f.name)
                and not _is_within(f.resolve(), out_abs)
            )
            if not files:
                raise InputError(f"{p}: the folder holds no point-cloud file ({', '.join(SUFFIXES)})")
            found += [(f, f.relative_to(p).with_suffix("")) for f in files]
        elif p.is_file():
            found.append((p, Path(p.stem)))
        else:
            raise InputError(f"{p}: no such file or folder")
    seen: dict[Path, Path] = {}
    items: list[PlanItem] = []
    taken: set[Path] = set()
    for f, rel in found:
        if f.resolve() in seen:
            continue  # the same file named twice
        name = rel
        if name in taken:
            name = rel.with_name(f"{rel.name}_{f.suffix.lstrip('.').lower()}")
            k = 2
            while name in taken:
                name = rel.with_name(f"{rel.name}_{f.suffix.lstrip('.').lower()}_{k}")
                k += 1
        taken.add(name)
        seen[f.resolve()] = f
        items.append(PlanItem(source=f, base=out / name, kitti_dir=out / "kitti" / name.parent))
    inputs_abs = set(seen)
    for item in items:
        outputs = [item.base.parent / (item.base.name + s) for s in OUTPUT_SUFFIXES]
        outputs.append(item.kitti_dir / f"{item.base.name}.txt")
        for o in outputs:
            if o.resolve() in inputs_abs:
                raise InputError(
                    f"--out {out}: the output {o} would overwrite an input; choose another --out"
                )
    return OutputPlan(out=out, items=items)
