"""Optional fast path through mamba-ssm's CUDA ``selective_scan_fn`` (imported lazily; CUDA tensors only).

mamba-ssm has no packed sequences, reverse or strided orders, so it is used only for plain scans with
``n <= 256``; everything else goes to the Triton backend.
"""

from __future__ import annotations

import functools

from torch import Tensor

__all__ = ["applicable", "available", "selective_scan", "unsupported_reason"]

_MAX_STATE = 256


@functools.lru_cache(maxsize=1)
def _load():
    """``selective_scan_fn`` or None when mamba-ssm (or its compiled extension) cannot be imported."""
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except (ImportError, RuntimeError, OSError):
        return None
    return selective_scan_fn


def available() -> bool:
    return _load() is not None


def unsupported_reason(u: Tensor, n: int, offsets: Tensor | None, reverse: bool, stride: int) -> str | None:
    """Why mamba-ssm cannot run this call, or None when it can."""
    if u.device.type != "cuda":
        return f"needs CUDA tensors, got {u.device}"
    if offsets is not None or reverse or stride != 1:
        return "mamba-ssm supports neither offsets, reverse nor stride"
    if n > _MAX_STATE:
        return f"mamba-ssm supports n <= {_MAX_STATE}, got {n}"
    if not available():
        return "mamba_ssm (with its CUDA extension) is not installed"
    return None


def applicable(u: Tensor, n: int, offsets: Tensor | None, reverse: bool, stride: int) -> bool:
    return unsupported_reason(u, n, offsets, reverse, stride) is None


def selective_scan(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state):
    """Call mamba-ssm; A, D and delta_bias are passed as float32 as its kernel requires."""
    fn = _load()
    if fn is None:
        raise RuntimeError("mamba_ssm is not importable")
    A = A.float()
    D = D.float() if D is not None else None
    delta_bias = delta_bias.float() if delta_bias is not None else None
    return fn(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
