"""Selective scan (Mamba S6) with packed sequences, reverse and strided scan orders.

``selective_scan`` dispatches to a torch reference, numba (CPU), Triton (GPU) or mamba-ssm (CUDA, optional).
``sequence_depthwise_conv`` is the centred depthwise conv along the same scan orders (numba on CPU).
``conv_silu`` and ``mixer_scan`` are the token-major fused ops of the MEEPO mixer (numba on CPU, Triton on GPU).
"""

from pc3d.kernels.scan.fused import conv_silu, mixer_scan
from pc3d.kernels.scan.interface import BACKENDS, selective_scan
from pc3d.kernels.scan.reference import scan_order, selective_scan_ref
from pc3d.kernels.scan.sequence_conv import sequence_depthwise_conv, sequence_depthwise_conv_ref

__all__ = [
    "BACKENDS",
    "conv_silu",
    "mixer_scan",
    "scan_order",
    "selective_scan",
    "selective_scan_ref",
    "sequence_depthwise_conv",
    "sequence_depthwise_conv_ref",
]
