"""Detection heads: VoteNet (indoor) and PointRCNN-style (outdoor)."""

from .common import class_mean_sizes
from .votenet import SCANNET_MEAN_SIZES, VoteNetHead

__all__ = ["SCANNET_MEAN_SIZES", "VoteNetHead", "class_mean_sizes"]
