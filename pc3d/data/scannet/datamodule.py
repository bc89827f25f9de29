"""Lightning datamodule for preprocessed ScanNet (segmentation or VoteNet detection)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
from torch.utils.data import DataLoader

from pc3d.data.batch import PointBatch
from pc3d.data.loader import worker_init
from pc3d.data.preprocessed import require_preprocessed
from pc3d.data.scannet.classes import SCANNET20_CLASSES, SCANNET_DET_CLASSES, SCANNET_DET_MEAN_SIZES
from pc3d.data.scannet.dataset import (
    EpochSampler,
    ScanNetDataset,
    SegCollate,
    collate_fragments,
)
from pc3d.data.scannet.pipelines import TEST_VIEWS, DetAugParams, SegAugParams
from pc3d.data.scannet.preprocess import load_scene


def data_mean_sizes(
    root: str | Path, scenes: list[str], fallback=SCANNET_DET_MEAN_SIZES
) -> list[list[float]]:
    """Per-class mean box size ``(18, 3)`` over ``scenes``; classes with no box use ``fallback``."""
    sums = np.zeros((len(fallback), 3))
    counts = np.zeros(len(fallback))
    for s in scenes:
        d = load_scene(Path(root) / "scans" / s, ("boxes", "box_labels"))
        np.add.at(sums, d["box_labels"], d["boxes"][:, 3:6])
        np.add.at(counts, d["box_labels"], 1)
    out = np.asarray(fallback, dtype=np.float64).copy()
    has = counts > 0
    out[has] = sums[has] / counts[has, None]
    return out.tolist()


class ScanNetDataModule(L.LightningDataModule):
    """ScanNet v2 from ``pc3d-data scannet`` output, yielding :class:`PointBatch`.

    **task="seg"** (Pointcept PTv3 recipe; feat = color (normalised to [-1, 1]) + normal, 6 channels):

    - train: the 16-step PTv3 augmentation (see :class:`SegAugParams`; every parameter below),
      optional Mix3D pair mixing (``mix_prob``). ``point["segment"] (N,) int64`` (-1 ignore),
      ``point["grid_coord"] (N, 3) int32`` (voxel of ``grid_size``, >= 0, for sparse conv and
      serialization).
    - val: every whole scene, grid-sampled (one point per voxel, fixed per scene), same keys, and
      for scoring at full resolution ``origin["inverse"] (R,) int64`` (the batch row, global,
      holding each original point's voxel: ``full_logits = logits[batch.origin["inverse"]]``),
      ``origin["segment"] (R,)`` packed by ``origin_offsets``, and ``meta[i]["num_points"]``.
    - test: one batch per scene (``batch_size`` ignored), whose clouds are the scene's GridSample
      test fragments (Pointcept: fragment ``f`` holds member ``f mod count_v`` of every voxel ``v``).
      ``point["index"] (R,) int64`` gives each row's original point id in the scene, and
      ``point["segment"]`` its label. Vote per original point::

          probs = torch.zeros(meta[0]["num_points"], C).index_add_(0, batch.point["index"], logits.softmax(-1))
          pred = probs.argmax(1)   # every original point is covered by at least one fragment

      ``test_views="pointcept13"`` adds Pointcept's test-time augmentation (4 z-rotations x scales
      {1, 0.95, 1.05} + a flip, each fragmented; votes add up the same way).
      ``meta[f]`` holds ``scene_id``, ``fragment``, ``num_fragments``, ``view`` and ``num_points``;
      the first fragment's ``origin`` rows are the untouched scene for writing predictions
      (``coord (N,3)`` float32 in the original frame, ``color (N,3)`` uint8, ``segment (N,)`` int64),
      the other fragments own no ``origin`` rows.

    **task="det"** (mmdetection3d VoteNet ScanNet; coordinates in the axis-aligned frame):
    ``num_points`` sampled points, feat = height above the floor (+ color with ``use_color_det``),
    x/y flips (``det_flip_p``), z-rotation ``U(-det_rotate_deg, det_rotate_deg)`` degrees;
    ``point["vote_target"] (N,3)`` (instance centre minus point), ``point["vote_mask"] (N,) bool``,
    ``point["instance"]``, ``point["segment"]`` (20-class), ``boxes (M,7)`` (yaw 0),
    ``box_labels (M,)`` (0..17), ``cloud["axis_align"] (B,4,4)``. The VoteNet head's per-class
    ``mean_sizes`` are its own argument: ScanNet's train means
    (:data:`~pc3d.data.scannet.classes.SCANNET_DET_MEAN_SIZES`) or those of other data by
    :func:`data_mean_sizes`.

    Workers start with ``multiprocessing_context="spawn"`` by default: numba's OpenMP threading
    layer (used by the point kernels) aborts a process forked after it ran; use
    ``persistent_workers`` to pay the start-up once.

    Splits are names under ``<root>/splits`` (``train``, ``val``, ``test``), txt paths or lists of
    scene ids; ``max_scenes`` truncates each split (demos). Test uses ``test_split`` (default
    ``val``, whose labels exist). Randomness is a function of ``(seed, epoch, index)`` only.
    """

    def __init__(
        self,
        root: str,
        task: str = "seg",
        batch_size: int = 2,
        val_batch_size: int = 1,
        num_workers: int = 0,
        seed: int = 0,
        train_split: str | list[str] = "train",
        val_split: str | list[str] = "val",
        test_split: str | list[str] = "val",
        max_scenes: int | None = None,
        loop: int = 1,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        multiprocessing_context: str | None = "spawn",
        segment_key: str = "segment20",
        mix_prob: float = 0.8,
        grid_size: float = 0.02,
        dropout_ratio: float = 0.2,
        dropout_p: float = 0.2,
        rotate_z: tuple[float, float] = (-1.0, 1.0),
        rotate_z_p: float = 0.5,
        rotate_xy: tuple[float, float] = (-1 / 64, 1 / 64),
        rotate_xy_p: float = 0.5,
        scale: tuple[float, float] = (0.9, 1.1),
        flip_p: float = 0.5,
        jitter_sigma: float = 0.005,
        jitter_clip: float = 0.02,
        elastic_params: list[list[float]] | None = ((0.2, 0.4), (0.8, 1.6)),
        elastic_p: float = 0.95,
        auto_contrast_p: float = 0.2,
        color_translation_p: float = 0.95,
        color_translation_ratio: float = 0.05,
        color_jitter_p: float = 0.95,
        color_jitter_std: float = 0.05,
        sphere_crop_points: int = 102400,
        test_views: str = "single",
        num_points: int = 40000,
        det_flip_p: float = 0.5,
        det_rotate_deg: float = 5.0,
        det_scale: tuple[float, float] = (1.0, 1.0),
        use_color_det: bool = False,
    ):
        super().__init__()
        if task not in ("seg", "det"):
            raise ValueError(f"task: expected 'seg' or 'det', got {task!r}")
        if batch_size < 1 or val_batch_size < 1:
            raise ValueError(f"batch_size/val_batch_size: must be >= 1, got {batch_size}/{val_batch_size}")
        if test_views not in TEST_VIEWS:
            raise ValueError(f"test_views: expected one of {TEST_VIEWS}, got {test_views!r}")
        self.save_hyperparameters()
        self.root = root
        self.task = task
        self.batch_size, self.val_batch_size = batch_size, val_batch_size
        self.num_workers, self.seed = num_workers, seed
        self.splits = {"train": train_split, "val": val_split, "test": test_split}
        self.max_scenes, self.loop = max_scenes, loop
        self.pin_memory, self.persistent_workers = pin_memory, persistent_workers and num_workers > 0
        self.multiprocessing_context = multiprocessing_context
        self.segment_key = segment_key
        self.mix_prob = mix_prob
        self.seg_aug = SegAugParams(
            grid_size=grid_size, dropout_ratio=dropout_ratio, dropout_p=dropout_p,
            rotate_z=tuple(rotate_z), rotate_z_p=rotate_z_p, rotate_xy=tuple(rotate_xy), rotate_xy_p=rotate_xy_p,
            scale=tuple(scale), flip_p=flip_p, jitter_sigma=jitter_sigma, jitter_clip=jitter_clip,
            elastic_params=elastic_params, elastic_p=elastic_p, auto_contrast_p=auto_contrast_p,
            color_translation_p=color_translation_p, color_translation_ratio=color_translation_ratio,
            color_jitter_p=color_jitter_p, color_jitter_std=color_jitter_std,
            sphere_crop_points=sphere_crop_points,
        )  # fmt: skip
        self.det_aug = DetAugParams(
            num_points=num_points, flip_p=det_flip_p, rotate_deg=det_rotate_deg, scale=tuple(det_scale)
        )
        self.use_color_det = use_color_det
        self.test_views = test_views
        self.datasets: dict[str, ScanNetDataset] = {}

    @property
    def num_classes(self) -> int:
        if self.task == "det":
            return len(SCANNET_DET_CLASSES)
        return 20 if self.segment_key == "segment20" else 200

    @property
    def class_names(self) -> list[str] | None:
        """Names of the label indices: the 18 VoteNet classes (``task="det"``), the 20 benchmark classes
        (``segment20``); ``None`` for ``segment200``, whose names pc3d does not ship."""
        if self.task == "det":
            return list(SCANNET_DET_CLASSES)
        return list(SCANNET20_CLASSES) if self.segment_key == "segment20" else None

    def _dataset(self, stage: str) -> ScanNetDataset:
        if stage not in self.datasets:
            self.datasets[stage] = ScanNetDataset(
                self.root,
                self.splits[stage],
                task=self.task,
                stage=stage,
                seed=self.seed,
                loop=self.loop if stage == "train" else 1,
                max_scenes=self.max_scenes,
                segment_key=self.segment_key,
                seg_aug=self.seg_aug,
                det_aug=self.det_aug,
                use_color_det=self.use_color_det,
                test_views=self.test_views,
            )
        return self.datasets[stage]

    def setup(self, stage: str | None = None) -> None:
        require_preprocessed(
            self.root,
            "scans",
            "ScanNet",
            make="pc3d-data scannet --raw <raw ScanNet>/scans --meta <raw ScanNet>/meta --out {root}",
            synth="pc3d-data synth scannet --out <raw ScanNet>",
        )
        wanted = {"fit": ("train", "val"), "validate": ("val",), "test": ("test",), "predict": ("test",)}
        for s in wanted.get(stage, ("train", "val", "test")) if stage else ("train", "val", "test"):
            self._dataset(s)

    def _loader(self, ds, batch_size, sampler=None, collate=PointBatch.collate) -> DataLoader:
        return DataLoader(
            ds,
            batch_size=batch_size,
            sampler=sampler,
            shuffle=False,
            num_workers=self.num_workers,
            collate_fn=collate,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
            drop_last=False,
            worker_init_fn=worker_init if self.num_workers > 0 else None,
            multiprocessing_context=self.multiprocessing_context if self.num_workers > 0 else None,
        )

    def train_dataloader(self) -> DataLoader:
        ds = self._dataset("train")
        collate = SegCollate(self.mix_prob) if self.task == "seg" else PointBatch.collate
        return self._loader(ds, self.batch_size, EpochSampler(len(ds), shuffle=True, seed=self.seed), collate)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self._dataset("val"), self.val_batch_size)

    def test_dataloader(self) -> DataLoader:
        ds = self._dataset("test")
        if self.task == "seg":
            return self._loader(ds, 1, collate=collate_fragments)
        return self._loader(ds, self.val_batch_size)

    def predict_dataloader(self) -> DataLoader:
        """The test split with the test pipeline: predictions cover every original point."""
        return self.test_dataloader()
