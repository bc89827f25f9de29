"""The ScanNet training/evaluation pipelines as :class:`Compose` objects.

- segmentation train: PTv3 / Pointcept ``semseg-pt-v3m1-0-base`` (meepo.md section 6), in order.
- segmentation val: CenterShift(z), GridSample(train, inverse), CenterShift(no z), NormalizeColor.
- segmentation test: CenterShift(z), NormalizeColor, GridSample test fragments, CenterShift(no z).
- detection: mmdetection3d VoteNet ScanNet: height, PointSample, flips, z-rotation, targets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pc3d.data.transforms import (
    CenterShift,
    ChromaticAutoContrast,
    ChromaticJitter,
    ChromaticTranslation,
    Compose,
    ElasticDistortion,
    GridSample,
    HeightFeature,
    NormalizeColor,
    PointSample,
    RandomDropout,
    RandomFlip,
    RandomJitter,
    RandomRotate,
    RandomScale,
    SphereCrop,
    VoteTargets,
)


@dataclass
class SegAugParams:
    """Every parameter of the PTv3 ScanNet segmentation pipeline (defaults = the recipe)."""

    grid_size: float = 0.02
    dropout_ratio: float = 0.2
    dropout_p: float = 0.2
    rotate_z: tuple[float, float] = (-1.0, 1.0)  # in units of pi
    rotate_z_p: float = 0.5
    rotate_xy: tuple[float, float] = (-1 / 64, 1 / 64)  # in units of pi
    rotate_xy_p: float = 0.5
    scale: tuple[float, float] = (0.9, 1.1)
    flip_p: float = 0.5
    jitter_sigma: float = 0.005
    jitter_clip: float = 0.02
    elastic_params: Sequence[Sequence[float]] | None = ((0.2, 0.4), (0.8, 1.6))
    elastic_p: float = 0.95
    auto_contrast_p: float = 0.2
    color_translation_p: float = 0.95
    color_translation_ratio: float = 0.05
    color_jitter_p: float = 0.95
    color_jitter_std: float = 0.05
    sphere_crop_points: int = 102400


def seg_train_pipeline(p: SegAugParams) -> Compose:
    origin = (0.0, 0.0, 0.0)
    return Compose(
        [
            CenterShift(apply_z=True),
            RandomDropout(p.dropout_ratio, p.dropout_p),
            RandomRotate(p.rotate_z, axis="z", center=origin, p=p.rotate_z_p),
            RandomRotate(p.rotate_xy, axis="x", center=origin, p=p.rotate_xy_p),
            RandomRotate(p.rotate_xy, axis="y", center=origin, p=p.rotate_xy_p),
            RandomScale(p.scale),
            RandomFlip(p.flip_p),
            RandomJitter(p.jitter_sigma, p.jitter_clip),
            ElasticDistortion(p.elastic_params, p.elastic_p),
            ChromaticAutoContrast(p.auto_contrast_p),
            ChromaticTranslation(p.color_translation_p, p.color_translation_ratio),
            ChromaticJitter(p.color_jitter_p, p.color_jitter_std),
            GridSample(p.grid_size, mode="train"),
            SphereCrop(p.sphere_crop_points, mode="random"),
            CenterShift(apply_z=False),
            NormalizeColor(),
        ]
    )


def seg_val_pipeline(grid_size: float) -> Compose:
    return Compose(
        [
            CenterShift(apply_z=True),
            GridSample(grid_size, mode="train", return_inverse=True),
            CenterShift(apply_z=False),
            NormalizeColor(),
        ]
    )


def seg_test_pre_pipeline() -> Compose:
    """Applied to the whole scene before it is split into fragments."""
    return Compose([CenterShift(apply_z=True), NormalizeColor()])


TEST_VIEWS = ("single", "pointcept13")


def seg_test_views(views: str) -> list[Compose]:
    """Test-time augmentation views, each applied to the whole scene before fragmenting.

    ``"single"``: the identity. ``"pointcept13"``: Pointcept's 13 views, z-rotations by
    {0, pi/2, pi, 3pi/2} at scales 1, 0.95 and 1.05 (12 views) plus one x-and-y flip.
    """
    if views == "single":
        return [Compose([])]
    if views != "pointcept13":
        raise ValueError(f"test_views: expected one of {TEST_VIEWS}, got {views!r}")
    origin = (0.0, 0.0, 0.0)
    out = []
    for scale in (1.0, 0.95, 1.05):
        for a in (0.0, 0.5, 1.0, 1.5):
            ts = [RandomRotate((a, a), axis="z", center=origin, p=1.0)]
            if scale != 1.0:
                ts.append(RandomScale((scale, scale)))
            out.append(Compose(ts))
    out.append(Compose([RandomFlip(p=1.0)]))
    return out


@dataclass
class DetAugParams:
    """VoteNet ScanNet pipeline parameters (defaults = mmdetection3d / Pointformer recipe)."""

    num_points: int = 40000
    flip_p: float = 0.5
    rotate_deg: float = 5.0
    scale: tuple[float, float] = (1.0, 1.0)


def det_train_pipeline(p: DetAugParams) -> Compose:
    ts = [HeightFeature(), PointSample(p.num_points), RandomFlip(p.flip_p)]
    if p.rotate_deg > 0:
        r = p.rotate_deg / 180.0
        ts.append(RandomRotate((-r, r), axis="z", center=(0.0, 0.0, 0.0), p=1.0))
    if tuple(p.scale) != (1.0, 1.0):
        ts.append(RandomScale(p.scale))
    ts.append(VoteTargets())
    return Compose(ts)


def det_input_pipeline(num_points: int) -> Compose:
    """The target-free part of the detection evaluation pipeline: height feature, then
    ``num_points`` sampled points (what inference on a scan without labels applies)."""
    return Compose([HeightFeature(), PointSample(num_points)])


def det_eval_pipeline(num_points: int) -> Compose:
    """:func:`det_input_pipeline` followed by the vote targets."""
    return Compose([*det_input_pipeline(num_points).transforms, VoteTargets()])
