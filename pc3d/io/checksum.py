"""Size + SHA-256 records of written files, so that a rerun can verify what it skips."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path


def file_record(path: str | os.PathLike) -> dict[str, int | str]:
    """``{"size": bytes, "sha256": hex}`` of the file at ``path``."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return {"size": size, "sha256": h.hexdigest()}


def bytes_record(data: bytes) -> dict[str, int | str]:
    """:func:`file_record` of ``data`` without reading it back from disk."""
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def verify_files(root: str | os.PathLike, records: dict, names: Iterable[str] | None = None) -> str | None:
    """Check the files under ``root`` against ``records`` (name -> :func:`file_record`).

    ``names`` lists files that must have a record. Returns ``None`` when all match, else a short
    reason naming the first file that is missing, resized or changed.
    """
    root = Path(root)
    if not isinstance(records, dict):
        return "no file records"
    for name in names or ():
        if name not in records:
            return f"{name}: no record"
    for name, rec in records.items():
        p = root / name
        try:
            size = p.stat().st_size
        except OSError:
            return f"{p}: missing"
        if not isinstance(rec, dict) or size != rec.get("size"):
            return f"{p}: size {size} != recorded {rec.get('size') if isinstance(rec, dict) else None}"
        if file_record(p)["sha256"] != rec.get("sha256"):
            return f"{p}: content differs from the recorded SHA-256"
    return None
