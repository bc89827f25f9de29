"""Point-cloud ops on packed batches (offsets, global row indices).

CPU tensors run numba kernels (parallel, cached); other devices run torch implementations
(``backend="torch"`` forces them on CPU too). See each function for exact semantics.
"""

from .gather import gather_points, three_interpolate
from .grid import grid_sample, voxelize
from .neighbors import ball_query, furthest_point_sample, knn, three_interpolate_weights, three_nn
from .serialization import ORDERS, serialization_order, serialize

__all__ = [
    "ORDERS",
    "ball_query",
    "furthest_point_sample",
    "gather_points",
    "grid_sample",
    "knn",
    "serialization_order",
    "serialize",
    "three_interpolate",
    "three_interpolate_weights",
    "three_nn",
    "voxelize",
]
