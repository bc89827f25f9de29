"""Software prefetch for numba kernels that walk the rows of ``(L, c)`` arrays out of memory order.

The mixer's scan and conv kernels visit rows in scan order (strided, reversed, or through a permutation), and
each worker reads only its block of channels of a row. The hardware prefetchers do not follow that pattern, so
the kernels wait on memory (measured: the strided scan ran at half the rate of the same scan on rows in cache).
The kernels therefore hint the rows they will visit ``PREFETCH_AHEAD`` scan steps later. A prefetch is only a
hint: it never faults and never changes a result.
"""

from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

__all__ = ["PREFETCH_AHEAD", "prefetch", "prefetch_row"]

PREFETCH_AHEAD = 8  # scan steps between the hint and the visit
_LINE = 64  # bytes per cache line


@intrinsic
def prefetch(typingctx, arr, row, col):
    """Hint the cache line holding ``arr[row, col]`` (2-D ``arr``) into every cache level."""
    if not (isinstance(arr, types.Array) and arr.ndim == 2):
        return None
    if not (isinstance(row, types.Integer) and isinstance(col, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        aryty, rowty, colty = signature.args
        ary = context.make_array(aryty)(context, builder, args[0])
        idx = [
            context.cast(builder, args[1], rowty, types.intp),
            context.cast(builder, args[2], colty, types.intp),
        ]
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, idx, wraparound=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        # read, highest locality (prefetcht0), data cache
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(arr, row, col), codegen


@njit(inline="always")
def prefetch_row(arr, row, c0, c1):
    """Hint every cache line of ``arr[row, c0:c1]`` (``c1 > c0``)."""
    step = max(1, _LINE // arr.itemsize)
    for c in range(c0, c1, step):
        prefetch(arr, row, c)
    prefetch(arr, row, c1 - 1)
