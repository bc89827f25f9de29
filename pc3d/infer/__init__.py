"""Inference on users' own scans: readers, predictors built from checkpoints, writers, ``pc3d infer``."""

from pc3d.infer.api import load_model
from pc3d.infer.checkpoint import CheckpointError
from pc3d.infer.cloud import Cloud, InputError
from pc3d.infer.readers import read_cloud

__all__ = ["CheckpointError", "Cloud", "InputError", "load_model", "read_cloud"]
