"""A process pool that survives dead workers.

Each worker holds exactly one item at a time, so when a worker dies (SIGKILL from the OOM killer,
a segfault in native code) the runner knows which item it held: that item fails with a message
naming the signal, a fresh worker replaces the dead one, and the remaining items carry on. The
runner waits on every worker's pipe and process sentinel together, so it never hangs on a worker
that is gone. Workers exit on their own when the parent dies (their pipe closes).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any


@dataclass(frozen=True)
class ItemResult:
    """Outcome of one item: ``value`` is the function's return when ``ok``, else ``error`` says why."""

    name: str
    ok: bool
    value: Any = None
    error: str | None = None


def describe_error(e: BaseException) -> str:
    """One line for a failed item: the message of a ``ValueError``/``OSError`` (they name the file),
    otherwise the exception type, message and the innermost frame."""
    if isinstance(e, (ValueError, OSError)):
        return str(e)
    tb = traceback.extract_tb(e.__traceback__)
    where = f" (at {tb[-1].filename}:{tb[-1].lineno})" if tb else ""
    return f"{type(e).__name__}: {e}{where}"


def _call(fn: Callable[..., Any], args: tuple) -> tuple[bool, Any]:
    try:
        return True, fn(*args)
    except Exception as e:  # any failure of one item is reported against that item
        return False, describe_error(e)


def _worker_main(conn: Connection, fn: Callable[..., Any]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the workers
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return  # parent gone
        if task is None:
            return
        idx, args = task
        ok, value = _call(fn, args)
        try:
            conn.send((idx, ok, value))
        except (BrokenPipeError, OSError):
            return
        except Exception as e:  # an unpicklable return value
            conn.send((idx, False, f"result could not be sent back: {describe_error(e)}"))


def _death_message(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (out of memory?)" if -exitcode == signal.SIGKILL else ""
        return f"worker process was killed by {name}{hint} while converting this item"
    return f"worker process exited with status {exitcode} while converting this item"


class _Worker:
    def __init__(self, ctx, fn: Callable[..., Any]):
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, fn), daemon=True)
        self.proc.start()
        child.close()
        self.item: int | None = None

    def give(self, idx: int, args: tuple) -> None:
        self.item = idx
        try:
            self.conn.send((idx, args))
        except OSError:
            pass  # the worker is already dead: its sentinel reports the item

    def stop(self, timeout: float = 5.0) -> None:
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.proc.join(timeout)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()


def _context(preload: Sequence[str]):
    try:
        ctx = mp.get_context("forkserver")
    except ValueError:
        return mp.get_context("spawn")
    if preload:
        ctx.set_forkserver_preload(list(preload))
    return ctx


def run_items(
    fn: Callable[..., Any],
    items: Sequence[tuple[str, tuple]],
    workers: int,
    preload: Sequence[str] = (),
    single_thread: bool = True,
) -> Iterator[ItemResult]:
    """Run ``fn(*args)`` for each ``(name, args)`` of ``items``; yield an :class:`ItemResult` per item
    as it finishes (completion order).

    ``workers <= 0`` runs in this process. Otherwise ``min(workers, len(items))`` processes (fork
    server, which imports ``preload`` once; spawn where there is none) each take one item at a
    time. ``fn`` must be a module-level function. An exception in ``fn`` fails only its item
    (see :func:`describe_error`); a worker that dies fails only the item it held and is replaced.
    ``single_thread`` sets ``OMP_NUM_THREADS=1`` for the workers.
    """
    items = list(items)
    if workers <= 0 or len(items) <= 1:
        for name, args in items:
            ok, value = _call(fn, args)
            yield ItemResult(name, ok, value if ok else None, None if ok else value)
        return
    ctx = _context(preload)
    queue = deque(range(len(items)))
    pool: list[_Worker] = []
    saved = os.environ.get("OMP_NUM_THREADS")
    if single_thread:
        os.environ["OMP_NUM_THREADS"] = "1"
    try:
        for _ in range(min(workers, len(items))):
            w = _Worker(ctx, fn)
            pool.append(w)
            idx = queue.popleft()
            w.give(idx, items[idx][1])
        while pool:
            busy = [w for w in pool if w.item is not None]
            if not busy:
                break
            ready = set(wait([w.conn for w in busy] + [w.proc.sentinel for w in busy]))
            for w in busy:
                if w.conn not in ready and w.proc.sentinel not in ready:
                    continue
                msg = None
                try:
                    if w.conn.poll():
                        msg = w.conn.recv()
                except (EOFError, OSError):
                    msg = None
                if msg is not None:
                    idx, ok, value = msg
                    w.item = None
                    yield ItemResult(items[idx][0], ok, value if ok else None, None if ok else value)
                    if queue:
                        nxt = queue.popleft()
                        w.give(nxt, items[nxt][1])
                    else:
                        pool.remove(w)
                        w.stop()
                    continue
                if w.proc.is_alive():
                    continue  # spurious wake-up
                w.proc.join()
                idx = w.item
                pool.remove(w)
                w.conn.close()
                yield ItemResult(items[idx][0], False, None, _death_message(w.proc.exitcode))
                if queue:
                    nw = _Worker(ctx, fn)
                    pool.append(nw)
                    nxt = queue.popleft()
                    nw.give(nxt, items[nxt][1])
    finally:
        if single_thread:
            if saved is None:
                os.environ.pop("OMP_NUM_THREADS", None)
            else:
                os.environ["OMP_NUM_THREADS"] = saved
        for w in pool:
            if w.proc.is_alive():
                w.proc.kill()
            w.proc.join()
            w.conn.close()
