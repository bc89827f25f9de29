"""Compute kernels: selective scan, point ops, box ops, CPU-safe sparse convolution."""

from pc3d.kernels.scan import selective_scan

__all__ = ["selective_scan"]
