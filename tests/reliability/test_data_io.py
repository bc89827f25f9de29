"""The shared mechanisms of pc3d.io: atomic writes, leftover cleanup, output guard, worker pool."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pc3d.io import (
    PendingJournal,
    UsageError,
    atomic_write_path,
    check_output_dir,
    clean_leftovers,
    file_record,
    publish_dir,
    run_items,
    save_npy,
    verify_files,
    write_json,
    write_png,
    write_text,
)
from pc3d.io.atomic import TMP_PREFIX


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_path_writer_gets_the_suffix_and_a_failure_keeps_the_old_file(tmp_path: Path):
    seen = []
    target = atomic_write_path(
        tmp_path / "a.ply", lambda tmp: (seen.append(tmp.suffix), tmp.write_bytes(b"old"))
    )
    assert seen == [".ply"] and target.read_bytes() == b"old"

    def fail(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write_path(target, fail)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.ply"]


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002])
def test_outputs_follow_the_umask(tmp_path: Path, mask: int):
    old = os.umask(mask)
    try:
        files = [
            write_text(tmp_path / "a.txt", "x\n"),
            write_json(tmp_path / "b.json", {"a": 1}),
            save_npy(tmp_path / "c.npy", np.arange(3)),
            write_png(tmp_path / "d.png", np.zeros((2, 3, 3), np.uint8)),
            atomic_write_path(tmp_path / "e.ply", lambda tmp: tmp.write_bytes(b"ply\n")),
        ]
        folder = publish_dir(tmp_path / "pub", lambda d: (d / "f.bin").write_bytes(b"1"))
    finally:
        os.umask(old)
    for f in files:
        assert _mode(f) == 0o666 & ~mask, f
    assert _mode(folder) == 0o777 & ~mask
    assert _mode(folder / "f.bin") == 0o666 & ~mask


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path):
    from pc3d.io import atomic_write

    target = write_text(tmp_path / "t.txt", "old")

    def boom(f):
        f.write(b"partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, boom)
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["t.txt"]


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_clean_leftovers_removes_only_dead_writers_temporaries(tmp_path: Path):
    dead = _dead_pid()
    mine = tmp_path / f"{TMP_PREFIX}{os.getpid()}-x-abc"  # a live writer's (this process)
    stale_file = tmp_path / f"{TMP_PREFIX}{dead}-x-abc"
    stale_dir = tmp_path / f"{TMP_PREFIX}{dead}-scene-abc"
    user = tmp_path / ".pc3d-tmp-notapid-x"  # does not match the pattern
    other = tmp_path / "data.tmp-123"
    for p in (mine, stale_file, user, other):
        p.write_text("x")
    stale_dir.mkdir()
    (stale_dir / "inner").write_text("x")
    outside = tmp_path.parent / f"{tmp_path.name}_target"
    outside.mkdir()
    (outside / "keep").write_text("x")
    link = tmp_path / f"{TMP_PREFIX}{dead}-link-abc"
    link.symlink_to(outside, target_is_directory=True)
    removed = clean_leftovers(tmp_path)
    assert sorted(p.name for p in removed) == sorted([stale_file.name, stale_dir.name, link.name])
    assert mine.exists() and user.exists() and other.exists()
    assert (outside / "keep").exists(), "a symlinked leftover must be unlinked, never followed"


def test_publish_dir_replaces_only_its_own_folder(tmp_path: Path):
    foreign = tmp_path / "scene"
    foreign.mkdir()
    (foreign / "raw.ply").write_bytes(b"ply")
    with pytest.raises(FileExistsError, match="not written by this tool"):
        publish_dir(foreign, lambda d: (d / "a").write_text("1"), replaceable=lambda p: False)
    assert (foreign / "raw.ply").read_bytes() == b"ply"
    assert sorted(os.listdir(tmp_path)) == ["scene"]
    own = publish_dir(tmp_path / "own", lambda d: (d / "a").write_text("1"))
    publish_dir(own, lambda d: (d / "a").write_text("2"), replaceable=lambda p: True)
    assert (own / "a").read_text() == "2"
    assert sorted(os.listdir(tmp_path)) == ["own", "scene"]


def test_output_guard(tmp_path: Path):
    raw = tmp_path / "D" / "scans"
    raw.mkdir(parents=True)
    (tmp_path / "file").write_text("x")
    (tmp_path / "link").symlink_to(raw)
    for out, word in [
        (tmp_path / "D", "contains the input"),
        (raw, "is the input"),
        (raw / "sub", "is inside the input"),
        (tmp_path / "link", "is the input"),
        (tmp_path / "link" / "x", "is inside the input"),
    ]:
        with pytest.raises(UsageError, match=word) as e:
            check_output_dir(out, {"--raw": raw})
        assert "--out" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(UsageError, match="not a folder"):
        check_output_dir(tmp_path / "file", {"--raw": raw})
    assert check_output_dir(tmp_path / "out", {"--raw": raw}) == (tmp_path / "out").resolve()


def test_verify_files_detects_truncation_and_changes(tmp_path: Path):
    f = write_text(tmp_path / "a.bin", "hello")
    rec = {"a.bin": file_record(f)}
    assert verify_files(tmp_path, rec) is None
    f.write_text("hellO")
    assert "SHA-256" in verify_files(tmp_path, rec)
    f.write_text("hell")
    assert "size" in verify_files(tmp_path, rec)
    f.unlink()
    assert "missing" in verify_files(tmp_path, rec)
    assert verify_files(tmp_path, rec, ["b.bin"]) == "b.bin: no record"


def test_journal_round_trip_and_corrupt_journal(tmp_path: Path):
    j = PendingJournal(tmp_path, "t")
    assert j.load() == set()
    j.save({"b", "a"})
    assert j.load() == {"a", "b"}
    assert PendingJournal(tmp_path, "other").load() == set()
    j.path.write_bytes(b"\x00garbage")
    assert j.load() == set()
    j.save(set())
    assert not j.path.exists()


def _item(name: str, mode: str) -> str:
    if mode == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if mode == "raise":
        raise ValueError(f"{name}: bad input")
    if mode == "crash":
        raise KeyError(name)
    return name.upper()


@pytest.mark.parametrize("workers", [0, 2])
def test_pool_fails_only_the_failing_items(workers: int):
    modes = {"a": "ok", "b": "raise", "c": "ok", "d": "crash", "e": "ok", "f": "kill", "g": "ok", "h": "kill"}
    if workers == 0:
        modes = {k: ("raise" if v == "kill" else v) for k, v in modes.items()}
    res = {r.name: r for r in run_items(_item, [(k, (k, v)) for k, v in modes.items()], workers)}
    assert sorted(res) == sorted(modes)
    for k, v in modes.items():
        assert res[k].ok == (v == "ok"), res[k]
        if v == "ok":
            assert res[k].value == k.upper()
    assert res["b"].error == "b: bad input"
    assert res["d"].error.startswith("KeyError: 'd' (at ")
    if workers:
        assert "killed by SIGKILL" in res["f"].error and "killed by SIGKILL" in res["h"].error


def test_pool_survives_every_worker_dying():
    items = [(str(i), (str(i), "kill")) for i in range(5)]
    res = list(run_items(_item, items, 2))
    assert sorted(r.name for r in res) == [str(i) for i in range(5)]
    assert all(not r.ok and "SIGKILL" in r.error for r in res)
