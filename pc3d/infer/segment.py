"""Semantic segmentation of a whole scan with the checkpoint's own test-time pipeline.

The scan goes through :class:`pc3d.data.scannet.dataset.SegTestPipeline` (the ScanNet datamodule's
test pipeline: centre shift, colour normalisation, GridSample test fragments of the trained voxel
size, the trained test views) and :meth:`SegmentationModule.vote` (the task's fragment and view
voting), tile by tile: scans larger than ``tile_points`` are cut into overlapping xy tiles
(:func:`pc3d.infer.tiling.xy_tiles`) whose votes add up, so memory is bounded by one tile.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import torch

from pc3d.infer.checkpoint import CheckpointError, TrainedTask
from pc3d.infer.cloud import Cloud, InputError, as_cloud, local_origin
from pc3d.infer.normals import estimate_normals
from pc3d.infer.tiling import xy_tiles

DEFAULT_TILE_POINTS = 400_000
DEFAULT_OVERLAP = 1.0


@dataclasses.dataclass
class Segmentation:
    """Per-point result: ``labels (N,)`` int64 class indices (-1 for points dropped as NaN/inf),
    ``scores (N,)`` float32 vote share of the winning class, ``class_names``, and ``notes`` on
    fallbacks taken (e.g. estimated normals)."""

    labels: np.ndarray
    scores: np.ndarray
    class_names: list[str]
    num_tiles: int = 1
    notes: list[str] = dataclasses.field(default_factory=list)


def _scannet_class_names(segment_key: str, num_classes: int) -> list[str]:
    from pc3d.data.scannet import classes

    names = getattr(
        classes, "SCANNET20_CLASSES" if segment_key == "segment20" else "SCANNET200_CLASSES", None
    )
    if names is not None and len(names) == num_classes:
        return list(names)
    return [f"class_{i}" for i in range(num_classes)]


class SegmentationPredictor:
    """Predicts a class for every point of a scan with a ScanNet-datamodule segmentation checkpoint.

    Args:
        task: the loaded checkpoint (:func:`pc3d.infer.checkpoint.load_trained_task`).
        tile_points: largest number of points run at once; larger scans are tiled.
        overlap: tile margin in metres (points in margins get votes from several tiles).
        missing_color: ``"error"`` (default) or ``"gray"``: colour every point (128, 128, 128)
            when the scan has no colours (the model was trained with colours; accuracy suffers).
        normal_radius: search radius (metres) of normal estimation for scans without normals;
            default ``max(0.05, 2.5 * voxel size)``.
        device: torch device of the forward passes.
    """

    kind = "segmentation"

    def __init__(
        self,
        task: TrainedTask,
        tile_points: int = DEFAULT_TILE_POINTS,
        overlap: float = DEFAULT_OVERLAP,
        missing_color: str = "error",
        normal_radius: float | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        from pc3d.data.scannet.dataset import SegTestPipeline

        dm, module = task.datamodule, task.module
        if getattr(dm, "task", None) != "seg":
            raise CheckpointError(
                f"--ckpt {task.path}: datamodule task {getattr(dm, 'task', None)!r} is not 'seg'"
            )
        if missing_color not in ("error", "gray"):
            raise ValueError(f"missing_color: expected 'error' or 'gray', got {missing_color!r}")
        if tile_points < 1000:
            raise ValueError(f"tile_points: must be >= 1000, got {tile_points}")
        self.task = task
        self.module = module.to(device)
        self.device = torch.device(device)
        self.grid_size = float(dm.seg_aug.grid_size)
        self.test_views = str(dm.test_views)
        self.pipeline = SegTestPipeline(self.grid_size, self.test_views)
        self.class_names = list(
            module.class_names or _scannet_class_names(dm.segment_key, module.num_classes)
        )
        self.tile_points, self.overlap = int(tile_points), float(overlap)
        self.missing_color = missing_color
        self.normal_radius = normal_radius if normal_radius is not None else max(0.05, 2.5 * self.grid_size)
        self.seed = int(dm.seed)

    def describe(self) -> str:
        """One line: what the model takes and how the scan is preprocessed."""
        return (
            f"segmentation, {len(self.class_names)} classes; input colour + normal; GridSample "
            f"{self.grid_size:g} m test fragments, views {self.test_views!r}; tiles of <= {self.tile_points} "
            f"points, {self.overlap:g} m overlap"
        )

    def predict(
        self,
        points: np.ndarray | Cloud,
        colors: np.ndarray | None = None,
        normals: np.ndarray | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> Segmentation:
        """Labels for every row of ``points (N, 3)`` (or a :class:`Cloud`).

        ``colors (N, 3)``: uint8, 0..255 or [0, 1] floats. ``normals (N, 3)``: estimated with
        Open3D when absent. Rows with NaN/inf values get label -1. ``progress(done, total)`` is
        called after each tile.
        """
        cloud = as_cloud(points, colors, normals)
        notes = []
        if cloud.color is None:
            if self.missing_color == "error":
                raise InputError(
                    f"{cloud.source}: the model was trained with colours and the scan has none "
                    "(use --missing-color gray to run with a constant grey)"
                )
            cloud = dataclasses.replace(cloud, color=np.full((cloud.num_points, 3), 128, np.uint8))
            notes.append("no colours: constant grey")
        if cloud.normal is None:
            normal = estimate_normals(cloud.coord - local_origin(cloud.coord), self.normal_radius)
            cloud = dataclasses.replace(cloud, normal=normal)
            notes.append(f"normals estimated (radius {self.normal_radius:g} m)")
        coord = (cloud.coord - local_origin(cloud.coord)).astype(np.float32)
        color = cloud.color.astype(np.float32)
        tiles = xy_tiles(cloud.coord, self.tile_points, self.overlap)
        votes = np.zeros((cloud.num_points, len(self.class_names)), np.float32)
        for t, tile in enumerate(tiles):
            votes[tile.members] += self._vote(coord, color, cloud.normal, tile.members, t)
            if progress is not None:
                progress(t + 1, len(tiles))
        total = votes.sum(1)
        labels = votes.argmax(1)
        scores = votes[np.arange(len(labels)), labels] / np.maximum(total, 1e-12)
        if cloud.dropped:
            notes.append(f"{cloud.dropped} NaN/inf rows labelled -1")
        return Segmentation(
            cloud.to_rows(labels.astype(np.int64), -1),
            cloud.to_rows(scores.astype(np.float32), 0.0),
            self.class_names,
            len(tiles),
            notes,
        )

    @torch.no_grad()
    def _vote(self, coord, color, normal, idx: np.ndarray, tile: int) -> np.ndarray:
        from pc3d.data.scannet.dataset import collate_fragments

        n = len(idx)
        data = {
            "coord": coord[idx],
            "color": color[idx],
            "normal": normal[idx],
            "segment": np.full(n, -1, np.int64),
        }
        rng = np.random.default_rng([self.seed, 2, 0, tile])
        frags = self.pipeline(data, rng, {"scene_id": f"tile{tile}", "index": tile})
        batch = collate_fragments([frags]).to(self.device)
        (scene,) = self.module.vote(batch)
        return scene["probs"].float().cpu().numpy()
