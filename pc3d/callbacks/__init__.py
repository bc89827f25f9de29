"""Lightning callbacks shared by the tasks."""

from pc3d.callbacks.last_checkpoint import LastCheckpoint
from pc3d.callbacks.prediction_writer import PredictionWriter
from pc3d.callbacks.time_left import TimeLeft

__all__ = ["LastCheckpoint", "PredictionWriter", "TimeLeft"]
