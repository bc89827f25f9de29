"""Compute kernels: selective scan, point ops, box ops, CPU-safe sparse convolution."""
