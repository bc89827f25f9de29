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

__version__ = "0.1.0"


def __getattr__(name: str):
    # ``pc3d.load_model`` without importing torch and Lightning at ``import pc3d``
    if name == "load_model":
        from pc3d.infer.api import load_model

        return load_model
    raise AttributeError(f"module 'pc3d' has no attribute {name!r}")
