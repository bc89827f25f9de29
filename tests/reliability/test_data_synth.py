"""``pc3d-data synth``: never overwrites data it did not write; killed runs converge."""

from __future__ import annotations

import os
import random
import stat
from pathlib import Path

import pytest
from data_procs import assert_no_leftovers, copy_tree, kill_parent_during_work, pc3d_data, tree_bytes

from pc3d.tools import data_cli

KITTI = ["--frames", "3", "--seed", "7", "--azimuth-steps", "400", "--no-image", "--no-progress"]


def test_refuses_a_folder_it_did_not_write(samples_dir: Path, tmp_path: Path, capsys):
    real = copy_tree(samples_dir / "scannet", tmp_path / "scannet")
    before = tree_bytes(real)
    assert data_cli.main(["synth", "scannet", "--out", str(real), "--scenes", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "was not written by pc3d-data synth" in err and "\n" not in err
    assert tree_bytes(real) == before
    out = tmp_path / "k"
    assert data_cli.main(["synth", "kitti", "--out", str(out), *KITTI, "--workers", "1"]) == 0
    assert data_cli.main(["synth", "scannet", "--out", str(out), "--scenes", "1", "--no-progress"]) == 2
    assert "holds synthetic 'kitti' data" in capsys.readouterr().err


def test_more_scenes_than_scannet_ids_is_an_argument_error(tmp_path: Path, capsys):
    out = tmp_path / "out"
    assert data_cli.main(["synth", "scannet", "--out", str(out), "--scenes", "10001", "--no-progress"]) == 2
    assert "--scenes: expected at most 10000" in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())


def test_outputs_follow_the_umask(tmp_path: Path):
    old = os.umask(0o027)
    try:
        assert data_cli.main(["synth", "kitti", "--out", str(tmp_path / "k"), *KITTI, "--workers", "1"]) == 0
    finally:
        os.umask(old)
    files = [p for p in (tmp_path / "k").rglob("*") if p.is_file()]
    assert files and all(stat.S_IMODE(p.stat().st_mode) == 0o640 for p in files)


@pytest.mark.slow
def test_killed_parent_then_rerun_is_byte_identical(synth_kitti: Path, tmp_path: Path):
    proc = pc3d_data("synth", "kitti", "--out", tmp_path / "out", *KITTI, "--workers", "2")
    kill_parent_during_work(proc, random.Random(4).uniform(0.0, 0.5))
    assert data_cli.main(["synth", "kitti", "--out", str(tmp_path / "out"), *KITTI, "--workers", "1"]) == 0
    assert tree_bytes(tmp_path / "out") == tree_bytes(synth_kitti)
    assert_no_leftovers(tmp_path / "out")
