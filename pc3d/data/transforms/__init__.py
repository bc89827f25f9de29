"""Point-cloud transforms shared by datasets: ``t(data: dict[str, np.ndarray], rng) -> dict``.

Semantics follow Pointcept's ``datasets/transform.py`` (segmentation) and mmdetection3d's indoor
pipeline (detection). See :mod:`pc3d.data.transforms.base` for the sample-dict convention.
"""

from pc3d.data.transforms.base import (
    Compose,
    Sample,
    Transform,
    affine,
    bounds,
    index_points,
    is_point_key,
    rotate_about,
)
from pc3d.data.transforms.color import (
    ChromaticAutoContrast,
    ChromaticJitter,
    ChromaticTranslation,
    NormalizeColor,
)
from pc3d.data.transforms.geometric import (
    CenterShift,
    ElasticDistortion,
    RandomFlip,
    RandomJitter,
    RandomRotate,
    RandomScale,
    rotation_matrix,
)
from pc3d.data.transforms.sampling import GridSample, PointSample, RandomDropout, SphereCrop, grid_coord_of
from pc3d.data.transforms.votenet import HeightFeature, VoteTargets, instance_centers

__all__ = [
    "CenterShift",
    "ChromaticAutoContrast",
    "ChromaticJitter",
    "ChromaticTranslation",
    "Compose",
    "ElasticDistortion",
    "GridSample",
    "HeightFeature",
    "NormalizeColor",
    "PointSample",
    "RandomDropout",
    "RandomFlip",
    "RandomJitter",
    "RandomRotate",
    "RandomScale",
    "Sample",
    "SphereCrop",
    "Transform",
    "VoteTargets",
    "affine",
    "bounds",
    "grid_coord_of",
    "index_points",
    "instance_centers",
    "is_point_key",
    "rotate_about",
    "rotation_matrix",
]
