"""The software prefetch hint of the numba kernels compiles to a prefetch instruction and changes no value."""

from __future__ import annotations

import platform

import numpy as np
import pytest
from numba import njit

import pc3d  # noqa: F401  (runtime settings before numba compiles)
from pc3d.kernels._prefetch import prefetch_row


@njit(cache=False)
def _sum_rows_with_hints(x, rows):
    total = 0.0
    for k in range(rows.shape[0]):
        if k + 1 < rows.shape[0]:
            prefetch_row(x, rows[k + 1], 0, x.shape[1])
        for c in range(x.shape[1]):
            total += x[rows[k], c]
    return total


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_prefetch_row_changes_no_value(dtype):
    x = np.arange(5 * 37, dtype=dtype).reshape(5, 37)
    rows = np.array([4, 0, 2, 2, 1])
    assert _sum_rows_with_hints(x, rows) == pytest.approx(float(x[rows].sum()))


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="checks the x86 instruction")
def test_prefetch_row_emits_prefetch_instructions():
    x = np.zeros((3, 40), dtype=np.float32)
    _sum_rows_with_hints(x, np.array([0, 1, 2]))
    asm = _sum_rows_with_hints.inspect_asm(_sum_rows_with_hints.signatures[0])
    assert "prefetcht0" in asm
