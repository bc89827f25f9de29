"""Datasets, transforms and Lightning datamodules. All batches are :class:`PointBatch`."""

from pc3d.data.batch import PointBatch, batch_index, check_offsets, offsets_from_counts

__all__ = ["PointBatch", "batch_index", "check_offsets", "offsets_from_counts"]
