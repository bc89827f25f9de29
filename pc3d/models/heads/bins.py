"""Bin-based box encoding of PointRCNN: location bins + residuals, heading bins + residuals, size residuals.

Layout of an encoded box (``channels(nb_loc, nb_head)`` values per row)::

    [x_bin (nb_loc) | y_bin (nb_loc) | x_res (nb_loc) | y_res (nb_loc) | z_res (1) |
     head_bin (nb_head) | head_res (nb_head) | size_res (3)]

``x``/``y`` are the ground-plane axes of the LiDAR frame (PointRCNN's camera x/z) and ``z`` is
vertical. A location offset ``d`` in ``[-scope, scope)`` falls in bin ``floor((d + scope) / bin_size)``
with the in-bin residual normalised by ``bin_size``. Headings use ``nb_head`` bins over ``heading_range``
centred at ``heading_start + (k + 1/2) * width`` (full circle) with residuals normalised by half a bin.
Sizes are residuals relative to an anchor size, normalised by it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class BinCoder:
    """Bin/residual encoder-decoder.

    Args:
        loc_scope: search range ``S`` (m) around the reference point.
        loc_bin_size: bin width ``delta`` (m); ``2 S / delta`` bins per axis.
        num_heading_bins: heading bins.
        heading_range: angular span covered by the heading bins (``2 pi`` for stage 1; ``pi / 2`` for
            stage 2, whose headings are offsets in ``[-pi/4, pi/4]``).
    """

    loc_scope: float = 3.0
    loc_bin_size: float = 0.5
    num_heading_bins: int = 12
    heading_range: float = 2 * math.pi

    def __post_init__(self) -> None:
        if self.loc_scope <= 0 or self.loc_bin_size <= 0 or self.num_heading_bins < 1:
            raise ValueError(
                f"loc_scope/loc_bin_size/num_heading_bins: expected positive values, got "
                f"{self.loc_scope}/{self.loc_bin_size}/{self.num_heading_bins}"
            )

    @property
    def num_loc_bins(self) -> int:
        return int(round(2 * self.loc_scope / self.loc_bin_size))

    @property
    def channels(self) -> int:
        return 4 * self.num_loc_bins + 1 + 2 * self.num_heading_bins + 3

    @property
    def full_circle(self) -> bool:
        return abs(self.heading_range - 2 * math.pi) < 1e-6

    def _split(self, enc: Tensor) -> dict[str, Tensor]:
        nl, nh = self.num_loc_bins, self.num_heading_bins
        sizes = [nl, nl, nl, nl, 1, nh, nh, 3]
        names = ["x_bin", "y_bin", "x_res", "y_res", "z_res", "h_bin", "h_res", "size"]
        return dict(zip(names, torch.split(enc, sizes, dim=1)))

    def _loc_target(self, d: Tensor) -> tuple[Tensor, Tensor]:
        s, b = self.loc_scope, self.loc_bin_size
        shifted = (d + s).clamp(0, 2 * s - 1e-4)
        bins = torch.floor(shifted / b).long().clamp(0, self.num_loc_bins - 1)
        return bins, (shifted - (bins.to(d.dtype) * b + b / 2)) / b

    def _heading_target(self, yaw: Tensor) -> tuple[Tensor, Tensor]:
        nh = self.num_heading_bins
        width = self.heading_range / nh
        if self.full_circle:
            a = torch.remainder(yaw + width / 2, 2 * math.pi)
            bins = torch.floor(a / width).long().clamp(0, nh - 1)
            res = a - (bins.to(yaw.dtype) * width + width / 2)
        else:
            half = self.heading_range / 2
            a = (yaw + half).clamp(0, self.heading_range - 1e-4)
            bins = torch.floor(a / width).long().clamp(0, nh - 1)
            res = a - (bins.to(yaw.dtype) * width + width / 2)
        return bins, res / (width / 2)

    def encode_targets(self, offset: Tensor, yaw: Tensor, size: Tensor, anchor: Tensor) -> dict[str, Tensor]:
        """Targets for ``offset (R,3)`` (box centre minus reference point, in the reference frame),
        ``yaw (R,)`` (relative heading), ``size (R,3)`` and ``anchor (R,3)`` sizes."""
        xb, xr = self._loc_target(offset[:, 0])
        yb, yr = self._loc_target(offset[:, 1])
        hb, hr = self._heading_target(yaw)
        return {
            "x_bin": xb, "x_res": xr, "y_bin": yb, "y_res": yr, "z_res": offset[:, 2],
            "h_bin": hb, "h_res": hr, "size": (size - anchor) / anchor,
        }  # fmt: skip

    def loss(self, enc: Tensor, target: dict[str, Tensor]) -> dict[str, Tensor]:
        """Per-term mean losses over the ``R`` rows: CE on bins, SmoothL1 on the residuals of the target bin."""
        p = self._split(enc)
        r = torch.arange(enc.shape[0], device=enc.device)
        out = {
            "loc_bin": F.cross_entropy(p["x_bin"], target["x_bin"])
            + F.cross_entropy(p["y_bin"], target["y_bin"]),
            "loc_res": F.smooth_l1_loss(p["x_res"][r, target["x_bin"]], target["x_res"])
            + F.smooth_l1_loss(p["y_res"][r, target["y_bin"]], target["y_res"])
            + F.smooth_l1_loss(p["z_res"][:, 0], target["z_res"]),
            "heading_bin": F.cross_entropy(p["h_bin"], target["h_bin"]),
            "heading_res": F.smooth_l1_loss(p["h_res"][r, target["h_bin"]], target["h_res"]),
            "size": F.smooth_l1_loss(p["size"], target["size"], reduction="none").sum(1).mean(),
        }
        return out

    def decode(self, enc: Tensor, anchor: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``enc (R,C)`` -> ``(offset (R,3), yaw (R,), size (R,3))`` in the reference frame."""
        p = self._split(enc)
        r = torch.arange(enc.shape[0], device=enc.device)
        s, b = self.loc_scope, self.loc_bin_size
        xb, yb = p["x_bin"].argmax(1), p["y_bin"].argmax(1)
        x = xb.to(enc.dtype) * b + b / 2 - s + p["x_res"][r, xb] * b
        y = yb.to(enc.dtype) * b + b / 2 - s + p["y_res"][r, yb] * b
        z = p["z_res"][:, 0]
        nh = self.num_heading_bins
        width = self.heading_range / nh
        hb = p["h_bin"].argmax(1)
        centre = hb.to(enc.dtype) * width + width / 2
        yaw = centre + p["h_res"][r, hb] * (width / 2)
        yaw = yaw - width / 2 if self.full_circle else yaw - self.heading_range / 2
        if self.full_circle:
            yaw = torch.atan2(torch.sin(yaw), torch.cos(yaw))
        size = (anchor * (1 + p["size"])).clamp_min(1e-2)
        return torch.stack([x, y, z], 1), yaw, size
