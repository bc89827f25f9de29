"""Segmentation losses."""

from pc3d.models.losses.lovasz import LovaszLoss, lovasz_grad, lovasz_softmax
from pc3d.models.losses.segmentation import SegmentationLoss

__all__ = ["LovaszLoss", "SegmentationLoss", "lovasz_grad", "lovasz_softmax"]
