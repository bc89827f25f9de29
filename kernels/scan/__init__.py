"""Selective scan (Mamba S6) with packed sequences, reverse and strided scan orders.

``selective_scan`` dispatches to a torch reference, numba (CPU), Triton (GPU) or mamba-ssm (CUDA, optional).
"""

from pc3d.kernels.scan.interface import BACKENDS, selective_scan
from pc3d.kernels.scan.reference import scan_order, selective_scan_ref

__all__ = ["BACKENDS", "scan_order", "selective_scan", "selective_scan_ref"]
