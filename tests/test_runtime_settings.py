"""What ``import pc3d`` sets for the processes that use it (README, "Runtime settings")."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = """
import warnings
warnings.simplefilter("error")  # any warning fails the run
import pc3d
import open3d  # bundles an older TBB than numba accepts
import numba
import numpy as np

@numba.njit(parallel=True)
def total(x):
    s = 0.0
    for i in numba.prange(x.shape[0]):
        s += x[i]
    return s

assert total(np.ones(100)) == 100.0
print(numba.threading_layer())
"""


def test_numba_picks_openmp_without_warning_after_open3d():
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_THREADING_LAYER")}
    res = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.strip() == "omp"
    assert "NumbaWarning" not in res.stderr


def test_a_chosen_threading_layer_priority_is_kept():
    env = {**os.environ, "NUMBA_THREADING_LAYER_PRIORITY": "workqueue omp tbb"}
    code = "import pc3d, os; print(os.environ['NUMBA_THREADING_LAYER_PRIORITY'])"
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert res.stdout.strip() == "workqueue omp tbb", res.stderr[-2000:]


WIDE_VECTORS = """
import os
import llvmlite.binding as llvm
import pc3d
from numba.core import config
wide = bool(llvm.get_host_cpu_features().get("avx512f") and llvm.get_host_cpu_features().get("avx512vl"))
print(wide, config.CPU_NAME == llvm.get_host_cpu_name(), (config.CPU_FEATURES or "").endswith(",-prefer-256-bit"))
"""


def test_numba_uses_the_host_cpu_with_wide_vectors_on_avx512():
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES")}
    res = subprocess.run(
        [sys.executable, "-c", WIDE_VECTORS], env=env, capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 0, res.stderr[-3000:]
    wide, same_cpu, tuned = res.stdout.split()
    if wide == "True":
        assert same_cpu == "True" and tuned == "True", res.stdout
    else:
        assert tuned == "False", res.stdout


def test_chosen_numba_cpu_settings_are_kept():
    env = {**os.environ, "NUMBA_CPU_NAME": "generic"}
    env.pop("NUMBA_CPU_FEATURES", None)
    code = "import pc3d, os; print(os.environ['NUMBA_CPU_NAME'], 'NUMBA_CPU_FEATURES' in os.environ)"
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert res.stdout.split() == ["generic", "False"], res.stderr[-2000:]


FREED_MEMORY = """
import pc3d
import torch

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

x = torch.ones(16 << 20)  # 64 MB
before = rss()
del x
print(int((before - rss()) > 32 << 20))  # 1: the freed block went back to the kernel
"""


def test_freed_memory_stays_in_the_heap_unless_malloc_is_configured():
    """``import pc3d`` keeps freed blocks for reuse (no page faults on the next large tensor); a ``MALLOC_*``
    variable leaves glibc's own behaviour (large blocks unmapped on free)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    runs = {}
    for name, extra in (("default", {}), ("configured", {"MALLOC_ARENA_MAX": "8"})):
        res = subprocess.run(
            [sys.executable, "-c", FREED_MEMORY],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert res.returncode == 0, res.stderr[-3000:]
        runs[name] = res.stdout.strip()
    assert runs == {"default": "0", "configured": "1"}
