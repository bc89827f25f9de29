"""Atomic file and folder writes.

Every write goes to a temporary name in the destination's own folder, is flushed and fsynced,
gets the permissions a plain ``open()`` would give under the caller's umask, and is then renamed
over the destination with ``os.replace``; the folder is fsynced after the rename. A reader, or a
run killed at any instant, sees either the old content or the new, never a torn file.

Temporary names are ``.pc3d-tmp-<pid>-<name>-<random>``: :func:`clean_leftovers` removes exactly
those whose writing process is gone, so a later run cleans up after a killed one and never touches
a file it did not write (nor a live writer's temporary).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

TMP_PREFIX = ".pc3d-tmp-"
_TMP_RE = re.compile(r"^\.pc3d-tmp-(\d+)-")


def current_umask() -> int:
    """The process umask, read without changing it where ``/proc`` allows (Linux), else by a swap."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _tmp_prefix(name: str) -> str:
    return f"{TMP_PREFIX}{os.getpid()}-{name[:80]}-"


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(f)`` on a binary file object, then publish it as ``path`` atomically.

    Parent folders are created. On any exception (including ``KeyboardInterrupt``) the temporary
    file is removed and ``path`` is left as it was. Returns ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder, cannot write a file there")
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path.name), dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
            os.fchmod(f.fileno(), 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_path(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` with the path of a temporary file beside ``path`` that has ``path``'s
    suffix (for writers that take a file name and pick the format by its suffix, such as Open3D's),
    then publish it as ``path`` atomically, like :func:`atomic_write` (umask, fsync, cleanup)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder, cannot write a file there")
    fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path.stem), suffix=path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(path.parent)
    return path


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Atomically write ``data`` to ``path``."""
    return atomic_write(path, lambda f: f.write(data))


def write_text(path: str | os.PathLike, text: str, newline: str = "\n") -> Path:
    """Atomically write ``text`` as UTF-8, with ``\\n`` line ends translated to ``newline``."""
    if newline != "\n":
        text = text.replace("\n", newline)
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any, **dumps_kwargs: Any) -> Path:
    """Atomically write ``json.dumps(obj, **dumps_kwargs)`` (compact separators by default)."""
    dumps_kwargs.setdefault("separators", (",", ":") if "indent" not in dumps_kwargs else None)
    return write_text(path, json.dumps(obj, **dumps_kwargs))


def npy_bytes(arr: np.ndarray) -> bytes:
    """The ``.npy`` encoding of ``arr`` (C-contiguous, no pickle)."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def save_npy(path: str | os.PathLike, arr: np.ndarray) -> Path:
    """Atomically ``np.save`` ``arr`` (no pickle) to ``path``."""
    return write_bytes(path, npy_bytes(arr))


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_leftover(name: str) -> bool:
    """Whether ``name`` is a temporary of :mod:`pc3d.io.atomic` whose writing process has exited."""
    m = _TMP_RE.match(name)
    return bool(m) and not _pid_alive(int(m.group(1)))


def clean_leftovers(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporaries (files or folders) that killed writers left directly in ``folder``.

    Only names made by this module whose process no longer runs are removed; symlinks are unlinked,
    never followed. Returns what was removed.
    """
    folder = Path(folder)
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for e in entries:
        if not is_leftover(e.name):
            continue
        p = Path(e.path)
        if e.is_dir(follow_symlinks=False):
            shutil.rmtree(p, ignore_errors=True)
        else:
            try:
                p.unlink()
            except FileNotFoundError:
                continue
        removed.append(p)
    return removed


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two existing paths (Linux ``renameat2(RENAME_EXCHANGE)``); ``False`` where the
    system cannot, so the caller falls back to two renames."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    rc = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return rc == 0


def publish_dir(
    final: str | os.PathLike,
    build: Callable[[Path], Any],
    replaceable: Callable[[Path], bool] | None = None,
) -> Path:
    """Build a folder with ``build(tmp_dir)`` and publish it as ``final`` atomically.

    ``build`` writes its files into the empty ``tmp_dir`` (plain writes are fine: each file is fsynced
    here before the rename). An existing ``final`` is replaced only when ``replaceable(final)`` says
    it is this tool's own output; otherwise ``FileExistsError`` is raised and nothing is touched.
    The new folder and the old one are swapped atomically (where the system cannot, the old one is
    renamed aside first, so a kill at that instant leaves no ``final`` and the item is redone); the
    old one then carries a temporary name and is deleted.
    """
    final = Path(final)
    parent = final.parent
    parent.mkdir(parents=True, exist_ok=True)
    if final.is_symlink() or (final.exists() and not final.is_dir()):
        raise FileExistsError(f"{final}: exists and is not a folder written by this tool")
    if final.exists() and (replaceable is None or not replaceable(final)):
        raise FileExistsError(f"{final}: exists and was not written by this tool; not replacing it")
    tmp: Path | None = Path(tempfile.mkdtemp(prefix=_tmp_prefix(final.name), dir=parent))
    old: Path | None = None
    try:
        os.chmod(tmp, 0o777 & ~current_umask())
        build(tmp)
        mode = 0o666 & ~current_umask()
        for entry in os.scandir(tmp):
            if entry.is_file(follow_symlinks=False):
                fd = os.open(entry.path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                    os.fchmod(fd, mode)
                finally:
                    os.close(fd)
        _fsync_dir(tmp)
        if final.exists() and _exchange(tmp, final):
            old, tmp = tmp, None  # the temporary name now holds the old folder
        else:
            if final.exists():
                old = Path(tempfile.mkdtemp(prefix=_tmp_prefix(final.name), dir=parent))
                os.replace(final, old)  # a rename replaces an empty folder
            os.replace(tmp, final)
            tmp = None
    except BaseException:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not final.exists():
            os.replace(old, final)
            old = None
        raise
    _fsync_dir(parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return final
