"""What every pc3d DataLoader shares: worker processes that do not oversubscribe the CPU."""

from __future__ import annotations


def worker_init(worker_id: int) -> None:
    """One compute thread per DataLoader worker, for torch and numba alike: the workers run in
    parallel with each other and with the training process, so threaded kernels inside a worker
    would only contend for the same cores."""
    import numba
    import torch

    torch.set_num_threads(1)
    numba.set_num_threads(1)
