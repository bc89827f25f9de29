"""Lightning callbacks shared by the tasks."""

from pc3d.callbacks.last_checkpoint import LastCheckpoint
from pc3d.callbacks.prediction_writer import PredictionWriter

__all__ = ["LastCheckpoint", "PredictionWriter"]
