"""pc3d: 3D perception on point clouds (Pointformer detection, MEEPO segmentation)."""

import os

# torch and numba's parallel kernels share OpenMP. With libgomp's default active wait policy, the
# threads of one runtime spin while the other works: a train step mixing numba point ops and
# torch ops measured 13x slower on 2 cores. Must be set before torch starts its thread pool.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# numba tries TBB first by default; Open3D loads an older TBB of its own, and numba then warns that it
# disables TBB in every process that imported Open3D first. Asking for OpenMP first selects the same
# layer without the warning. Read when numba is imported.
os.environ.setdefault("NUMBA_THREADING_LAYER_PRIORITY", "omp tbb workqueue")


def _numba_wide_vectors() -> None:
    """On AVX-512 hosts, let numba's LLVM use 512-bit vectors (its tuning for these CPUs prefers 256-bit).

    The token-major scan kernels vectorise across channels and are bound by arithmetic: 512-bit vectors
    made MEEPO's selective scan 1.6x faster on an AVX-512 Xeon. Numba reads the CPU name and features when
    it is imported; they stay the host's own, with only the ``prefer-256-bit`` tuning turned off. Left alone
    when either variable is set, or on hosts without AVX-512.
    """
    if "NUMBA_CPU_NAME" in os.environ or "NUMBA_CPU_FEATURES" in os.environ:
        return
    try:
        import llvmlite.binding as llvm

        features = llvm.get_host_cpu_features()
        name = llvm.get_host_cpu_name()
    except (ImportError, RuntimeError):
        return
    if features.get("avx512f") and features.get("avx512vl"):
        os.environ["NUMBA_CPU_NAME"] = name
        os.environ["NUMBA_CPU_FEATURES"] = features.flatten() + ",-prefer-256-bit"


_numba_wide_vectors()


def _reuse_freed_memory() -> None:
    """On glibc, keep freed memory in the heap for reuse instead of returning it to the kernel.

    glibc gives every allocation above its mmap threshold (128 kB, adapting up to 32 MB) fresh pages from
    ``mmap`` and unmaps them on free, so the large activations of a forward are new memory that the kernel
    zeroes page by page on first touch: about 0.2 ms per MB on a 2-core Xeon, 0.4-0.5 s of a 4-5 s forward
    of MEEPO or PTv3 on an 80k-point scene. With ``mmap`` off (``M_MMAP_MAX = 0``) and up to 2 GB of free
    heap kept before trimming, freed blocks are reused, as a caching allocator's pool is; the price is a
    higher resident peak (freed blocks stay resident until reused). Left alone when any ``MALLOC_*``
    variable or ``GLIBC_TUNABLES`` is set, and without glibc.
    """
    if "GLIBC_TUNABLES" in os.environ or any(k.startswith("MALLOC_") for k in os.environ):
        return
    import ctypes
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_max = -1, -4  # <malloc.h>
    mallopt(m_mmap_max, 0)
    mallopt(m_trim_threshold, 2**31 - 1)


_reuse_freed_memory()

__version__ = "0.1.0"


def __getattr__(name: str):
    # ``pc3d.load_model`` without importing torch and Lightning at ``import pc3d``
    if name == "load_model":
        from pc3d.infer.api import load_model

        return load_model
    raise AttributeError(f"module 'pc3d' has no attribute {name!r}")
