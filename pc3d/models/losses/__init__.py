"""Segmentation losses."""

from pc3d.models.losses.lovasz import LovaszLoss, lovasz_grad, lovasz_softmax

__all__ = ["LovaszLoss", "lovasz_grad", "lovasz_softmax"]
