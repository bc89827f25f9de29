"""Helpers of the data-tool reliability tests: writable copies, subprocess runs of ``pc3d-data``,
process-tree inspection and kills (from /proc), and whole-tree byte snapshots."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path


def copy_tree(src: Path, dst: Path) -> Path:
    """A writable copy of ``src`` (the samples are read-only)."""
    shutil.copytree(src, dst)
    for p in [dst, *dst.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dst


def pc3d_data(*args: str | Path, **kw) -> subprocess.Popen:
    """Start ``pc3d-data ARGS`` as a subprocess (stdout/stderr captured as text)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "pc3d.tools.data_cli", *map(str, args)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, **kw)


def run_data(*args: str | Path) -> subprocess.CompletedProcess:
    """Run ``pc3d-data ARGS`` to completion."""
    p = pc3d_data(*args)
    out, err = p.communicate(timeout=600)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def children(pid: int) -> list[int]:
    """Direct child pids of ``pid`` (from /proc)."""
    try:
        return [int(c) for t in os.listdir(f"/proc/{pid}/task") for c in
                Path(f"/proc/{pid}/task/{t}/children").read_text().split()]  # fmt: skip
    except OSError:
        return []


def descendants(pid: int) -> list[int]:
    """All descendant pids of ``pid``, breadth first."""
    out, frontier = [], [pid]
    while frontier:
        nxt = [c for p in frontier for c in children(p)]
        out += nxt
        frontier = nxt
    return out


def wait_gone(pids: list[int], steps: int = 2000) -> None:
    """Poll until none of ``pids`` runs (zombies count as gone); fails after ``steps`` polls of 10 ms."""
    for _ in range(steps):
        alive = []
        for p in pids:
            try:
                state = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state != "Z":
                alive.append(p)
        if not alive:
            return
        time.sleep(0.01)
    raise AssertionError(f"processes still running: {alive}")


def wait_for_worker(proc: subprocess.Popen, steps: int = 3000) -> int | None:
    """Pid of the first pool worker of ``proc`` (a grandchild: workers fork from the fork server),
    polled every 5 ms; ``None`` when ``proc`` ends first."""
    for _ in range(steps):
        if proc.poll() is not None:
            return None
        grand = [g for c in children(proc.pid) for g in children(c)]
        if grand:
            return grand[0]
        time.sleep(0.005)
    return None


def kill_parent_during_work(proc: subprocess.Popen, delay: float) -> None:
    """SIGKILL ``proc`` ``delay`` seconds after its first worker starts (or at once, without workers),
    then wait until every process it had started is gone."""
    wait_for_worker(proc)
    time.sleep(delay)
    family = descendants(proc.pid)
    try:
        os.kill(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.communicate(timeout=60)
    wait_gone(family)


def kill_first_worker(proc: subprocess.Popen, delay: float, steps: int = 3000) -> int | None:
    """SIGKILL the first pool worker of ``proc`` (a grandchild: workers fork from the fork server)
    ``delay`` seconds after it appears; returns its pid, or ``None`` when the run ended first."""
    for _ in range(steps):
        if proc.poll() is not None:
            return None
        grand = [g for c in children(proc.pid) for g in children(c)]
        if grand:
            time.sleep(delay)
            try:
                os.kill(grand[0], signal.SIGKILL)
            except ProcessLookupError:
                return None
            return grand[0]
        time.sleep(0.005)
    return None


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative path, with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def assert_no_leftovers(root: Path) -> None:
    left = [str(p) for p in root.rglob(".pc3d-tmp-*")]
    assert not left, f"temporary leftovers: {left}"
