"""Detection heads: VoteNet (indoor) and PointRCNN-style (outdoor)."""

from .common import class_mean_sizes
from .votenet import VoteNetHead

__all__ = ["VoteNetHead", "class_mean_sizes"]
