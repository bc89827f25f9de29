"""Compute kernels: selective scan, point ops, box ops, CPU-safe sparse convolution."""

from pc3d.kernels.scan import selective_scan, sequence_depthwise_conv

__all__ = ["selective_scan", "sequence_depthwise_conv"]
