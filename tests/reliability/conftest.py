"""Fixtures of the data-tool reliability tests: tiny synthetic raw datasets and writable copies."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from data_procs import copy_tree

from pc3d.tools import data_synth

SYNTH_SCENES = 3
SYNTH_FRAMES = 3


def _synth(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    data_synth.add_arguments(parser)
    assert data_synth.run(parser.parse_args(argv)) == 0


@pytest.fixture(scope="session")
def synth_scannet(tmp_path_factory) -> Path:
    """Raw synthetic ScanNet: ``<root>/scans/scene000{0,1,2}_00`` and ``<root>/meta`` (read-only use)."""
    root = tmp_path_factory.mktemp("synth_scannet")
    _synth(["scannet", "--out", str(root), "--scenes", str(SYNTH_SCENES), "--seed", "7", "--workers", "1",
            "--spacing", "0.12", "--no-progress"])  # fmt: skip
    return root


@pytest.fixture(scope="session")
def synth_kitti(tmp_path_factory) -> Path:
    """Raw synthetic KITTI object root with ``training/`` and ``ImageSets/`` (read-only use)."""
    root = tmp_path_factory.mktemp("synth_kitti")
    _synth(["kitti", "--out", str(root), "--frames", str(SYNTH_FRAMES), "--seed", "7", "--workers", "1",
            "--azimuth-steps", "400", "--no-image", "--no-progress"])  # fmt: skip
    return root


@pytest.fixture
def scannet_copy(synth_scannet: Path, tmp_path: Path) -> Path:
    """A writable copy of :func:`synth_scannet` for tests that corrupt it."""
    return copy_tree(synth_scannet, tmp_path / "raw")


@pytest.fixture
def kitti_copy(synth_kitti: Path, tmp_path: Path) -> Path:
    """A writable copy of :func:`synth_kitti` for tests that corrupt it."""
    return copy_tree(synth_kitti, tmp_path / "kitti_raw")
