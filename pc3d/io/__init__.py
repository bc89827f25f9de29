"""Shared file-writing mechanisms of the pc3d tools.

- :mod:`pc3d.io.atomic`: atomic file writes (bytes, text, JSON, ``.npy``, or any writer given a path), atomic folder publish,
  and cleanup of the temporaries a killed run left behind.
- :mod:`pc3d.io.image`: atomic PNG writes.
- :mod:`pc3d.io.guard`: refuse output folders that overlap an input or are files.
- :mod:`pc3d.io.pool`: a worker-process runner where a dead worker fails only the item it held.
- :mod:`pc3d.io.checksum`: size + SHA-256 records, to verify outputs that a rerun skips.
- :mod:`pc3d.io.journal`: items pending a (re)do, so failed overwrites are not forgotten.
"""

from pc3d.io.atomic import (
    TMP_PREFIX,
    atomic_write,
    atomic_write_path,
    clean_leftovers,
    current_umask,
    npy_bytes,
    publish_dir,
    save_npy,
    write_bytes,
    write_json,
    write_text,
)
from pc3d.io.checksum import bytes_record, file_record, verify_files
from pc3d.io.guard import UsageError, check_output_dir
from pc3d.io.image import write_png
from pc3d.io.journal import PendingJournal
from pc3d.io.pool import ItemResult, describe_error, run_items

__all__ = [
    "TMP_PREFIX",
    "ItemResult",
    "PendingJournal",
    "UsageError",
    "atomic_write",
    "atomic_write_path",
    "bytes_record",
    "check_output_dir",
    "clean_leftovers",
    "current_umask",
    "describe_error",
    "file_record",
    "npy_bytes",
    "publish_dir",
    "run_items",
    "save_npy",
    "verify_files",
    "write_bytes",
    "write_json",
    "write_png",
    "write_text",
]
