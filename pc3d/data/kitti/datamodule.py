"""Lightning datamodule for KITTI 3D object detection (LiDAR)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import lightning as L
import numpy as np
from torch.utils.data import DataLoader

from pc3d.data.batch import PointBatch
from pc3d.data.kitti.dataset import DEFAULT_POINT_RANGE, KittiDataset
from pc3d.data.loader import worker_init
from pc3d.data.preprocessed import require_preprocessed


class KittiDataModule(L.LightningDataModule):
    """KITTI train/val/test loaders yielding :class:`PointBatch`.

    Every argument is a plain value, so the module is configured from YAML
    (``class_path: pc3d.data.kitti.KittiDataModule``). Augmentation applies to the train split
    only; val/test are deterministic (same fixed-count point sampling, no shuffling).

    Args:
        root: directory written by ``pc3d-data kitti``.
        classes: detection classes, index = label.
        batch_size, val_batch_size, num_workers: loader settings.
        train_split, val_split, test_split: info files to use (``train``/``val``/``trainval``/``test``).
        num_points: points per cloud after sampling (16384, PointRCNN).
        point_range: ``[x0, y0, z0, x1, y1, z1]``.
        gt_sampling, sample_counts, min_points: GT-sampling (Car 20 / Pedestrian 15 / Cyclist 15, ≥ 5 points).
        flip_prob, rotation, scaling, shuffle_points: global augmentation.
        seed: augmentation seed.
        multiprocessing_context: DataLoader worker start method. ``forkserver`` (default) because
            numba's GNU-OpenMP threading layer aborts a worker forked from a process that already
            ran a parallel kernel ("fork() called from a process already using GNU OpenMP");
            workers are persistent, so they start once per run.
        Splits: ``test_split`` defaults to ``val`` (KITTI's test split has no labels).
    """

    def __init__(
        self,
        root: str,
        classes: Sequence[str] = ("Car", "Pedestrian", "Cyclist"),
        batch_size: int = 4,
        val_batch_size: int | None = None,
        num_workers: int = 4,
        train_split: str = "train",
        val_split: str = "val",
        test_split: str = "val",
        num_points: int = 16384,
        point_range: Sequence[float] = DEFAULT_POINT_RANGE,
        gt_sampling: bool = True,
        sample_counts: dict[str, int] | None = None,
        min_points: dict[str, int] | None = None,
        flip_prob: float = 0.5,
        rotation: Sequence[float] = (-np.pi / 4, np.pi / 4),
        scaling: Sequence[float] = (0.95, 1.05),
        shuffle_points: bool = True,
        seed: int = 0,
        multiprocessing_context: str | None = "forkserver",
    ) -> None:
        super().__init__()
        self.save_hyperparameters()  # checkpoints carry the test-time pipeline (pc3d.load_model)
        self.multiprocessing_context = multiprocessing_context
        self.root = Path(root)
        self.classes = list(classes)
        self.batch_size = batch_size
        self.val_batch_size = val_batch_size or batch_size
        self.num_workers = num_workers
        self.splits = {"train": train_split, "val": val_split, "test": test_split}
        self.common = {"classes": self.classes, "num_points": num_points, "point_range": tuple(point_range)}
        self.aug = {
            "gt_sampling": gt_sampling,
            "sample_counts": sample_counts,
            "min_points": min_points,
            "flip_prob": flip_prob,
            "rotation": tuple(rotation),
            "scaling": tuple(scaling),
            "shuffle_points": shuffle_points,
            "seed": seed,
        }
        self.datasets: dict[str, KittiDataset] = {}

    @property
    def class_names(self) -> list[str]:
        """Names of the label indices: ``classes``."""
        return list(self.classes)

    def dataset(self, stage: str) -> KittiDataset:
        """The dataset of ``stage`` (``train``/``val``/``test``), built on first use."""
        if stage not in self.datasets:
            training = stage == "train"
            kw = self.aug if training else {"seed": self.aug["seed"]}
            self.datasets[stage] = KittiDataset(
                self.root, self.splits[stage], training=training, **self.common, **kw
            )
        return self.datasets[stage]

    def setup(self, stage: str | None = None) -> None:
        require_preprocessed(
            self.root,
            "infos",
            "KITTI",
            make="pc3d-data kitti --root <raw KITTI: training/velodyne, label_2, calib> --out {root}",
            synth="pc3d-data synth kitti --out <raw KITTI>",
        )
        if stage in (None, "fit"):
            self.dataset("train")
            self.dataset("val")
        if stage == "validate":
            self.dataset("val")
        if stage in (None, "test", "predict"):
            self.dataset("test")

    def _loader(self, stage: str, shuffle: bool, batch_size: int) -> DataLoader:
        workers = self.num_workers > 0
        return DataLoader(
            self.dataset(stage),
            batch_size=batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            collate_fn=PointBatch.collate,
            persistent_workers=workers,
            multiprocessing_context=self.multiprocessing_context if workers else None,
            worker_init_fn=worker_init if workers else None,
            drop_last=False,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True, self.batch_size)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", False, self.val_batch_size)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False, self.val_batch_size)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", False, self.val_batch_size)
