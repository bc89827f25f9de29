"""A pending-items journal: items a run was asked to (re)do stay pending until they succeed.

A run writes the journal before it starts work and rewrites it with only the items that failed
when it ends; a run killed in between leaves every item it was asked to redo pending. The next
run redoes pending items even without ``--overwrite``, so a failed or interrupted overwrite is
never mistaken for a finished one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from pc3d.io.atomic import write_json

JOURNAL_NAME = ".pc3d-pending.json"


class PendingJournal:
    """``<folder>/.pc3d-pending.json``: ``{"version": 1, "tool": ..., "pending": [item, ...]}``."""

    def __init__(self, folder: str | os.PathLike, tool: str):
        self.path = Path(folder) / JOURNAL_NAME
        self.tool = tool

    def load(self) -> set[str]:
        """Pending items; an unreadable journal is treated as naming none (and rewritten by the run)."""
        try:
            obj = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return set()
        if (
            not isinstance(obj, dict)
            or obj.get("tool") != self.tool
            or not isinstance(obj.get("pending"), list)
        ):
            return set()
        return {str(s) for s in obj["pending"]}

    def save(self, items: Iterable[str]) -> None:
        """Replace the pending set (the journal is removed when it is empty)."""
        items = sorted(set(items))
        if not items:
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass
            return
        write_json(self.path, {"version": 1, "tool": self.tool, "pending": items}, indent=1)
