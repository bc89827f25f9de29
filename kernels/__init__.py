"""Compute kernels: selective scan, point ops, box ops, CPU-safe sparse convolution, and the packing
helpers (``offsets``) they all share."""

from pc3d.kernels.packing import batch_index, check_offsets, offsets_from_counts
from pc3d.kernels.scan import selective_scan, sequence_depthwise_conv

__all__ = ["batch_index", "check_offsets", "offsets_from_counts", "selective_scan", "sequence_depthwise_conv"]
