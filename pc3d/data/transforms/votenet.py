"""VoteNet (mmdetection3d) pieces for indoor detection: height feature, vote and box targets."""

from __future__ import annotations

import numpy as np

from pc3d.data.transforms.base import Sample


class HeightFeature:
    """mmdetection3d ``shift_height``: ``height = z - percentile(z, 0.99)`` (the 0.99th percentile, i.e.
    about the floor), stored as ``height (N,) float32``. Apply before subsampling, like mmdet3d."""

    def __init__(self, percentile: float = 0.99):
        if not 0.0 <= percentile <= 100.0:
            raise ValueError(f"HeightFeature.percentile: expected [0, 100], got {percentile}")
        self.percentile = float(percentile)

    def __call__(self, data: Sample, rng: np.random.Generator) -> Sample:
        z = data["coord"][:, 2]
        floor = np.percentile(z, self.percentile) if len(z) else 0.0
        data["height"] = (z - floor).astype(np.float32)
        return data

    def __repr__(self) -> str:
        return f"HeightFeature(percentile={self.percentile})"


def instance_centers(coord: np.ndarray, instance: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per instance id ``>= 0``: ``ids (I,)``, ``(min+max)/2`` centres ``(I, 3)`` and first-point rows ``(I,)``."""
    valid = np.flatnonzero(instance >= 0)
    if valid.size == 0:
        return np.zeros(0, np.int64), np.zeros((0, 3), np.float32), np.zeros(0, np.int64)
    order = valid[np.argsort(instance[valid], kind="stable")]
    inst = instance[order]
    starts = np.flatnonzero(np.r_[True, inst[1:] != inst[:-1]])
    pts = coord[order]
    mn = np.minimum.reduceat(pts, starts, axis=0)
    mx = np.maximum.reduceat(pts, starts, axis=0)
    return inst[starts].astype(np.int64), ((mn + mx) / 2).astype(np.float32), order[starts]


class VoteTargets:
    """Per-point vote targets (mmdetection3d ``VoteHead.get_targets`` for ScanNet).

    For every instance whose first point has a detection class (``det_class >= 0``, per point
    ``(N,) int64``), its points get ``vote_target = centre - coord`` where ``centre`` is the
    ``(min+max)/2`` of the instance's (augmented, sampled) points, and ``vote_mask = 1``.
    Adds ``vote_target (N, 3) float32`` and ``vote_mask (N,) bool``.
    """

    def __call__(self, data: Sample, rng: np.random.Generator) -> Sample:
        coord, instance, det = data["coord"], data["instance"], data["det_class"]
        n = coord.shape[0]
        target = np.zeros((n, 3), np.float32)
        mask = np.zeros(n, bool)
        ids, centers, first = instance_centers(coord, instance)
        ok = det[first] >= 0
        if ok.any():
            lut = np.full(int(ids.max()) + 1, -1, np.int64)
            lut[ids[ok]] = np.flatnonzero(ok)
            sel = np.flatnonzero(instance >= 0)
            k = lut[instance[sel]]
            sel, k = sel[k >= 0], k[k >= 0]
            target[sel] = centers[k] - coord[sel]
            mask[sel] = True
        data["vote_target"] = target
        data["vote_mask"] = mask
        return data

    def __repr__(self) -> str:
        return "VoteTargets()"
