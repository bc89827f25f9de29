"""Shared fixtures. Real sample data lives in ``$PC3D_SAMPLES`` (default ``../shared/data``)."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: see pc3d/__init__.py

from pathlib import Path  # noqa: E402

import numba  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]


def _samples_root() -> Path:
    return Path(os.environ.get("PC3D_SAMPLES", REPO_ROOT.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """Root of the real ScanNet/KITTI samples; skips the test when absent (required in CI)."""
    root = _samples_root()
    if not (root / "scannet").is_dir() or not (root / "kitti").is_dir():
        if os.environ.get("CI"):
            pytest.fail(
                f"CI must run the sample-data tests, but $PC3D_SAMPLES={root} has no scannet/ and kitti/"
            )
        pytest.skip(f"real sample data not found at {root} (set $PC3D_SAMPLES)")
    return root


@pytest.fixture(autouse=True)
def _two_threads():
    """Run every test at 2 torch threads, like CI, so races in threaded kernels show up."""
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def one_thread(_two_threads):
    """One torch thread, for training tests that must be deterministic (threaded CPU backward sums
    scatter-adds in varying order, and hundreds of optimizer steps amplify that). numba's OpenMP layer
    resets the OpenMP thread count when it starts, which would undo ``set_num_threads(1)`` at the
    first kernel call, so it is started first."""
    numba.get_num_threads()
    torch.set_num_threads(1)
    yield
