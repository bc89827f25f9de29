"""Write ``predict`` outputs to disk: npz scenes, ScanNet label files, KITTI result files.

A task's ``predict_step`` returns one dict per cloud (see docs/architecture.md, "Prediction
records"): ``coord (N, 3)``, optional ``color``, ``segment``/``pred`` ``(N,)``,
``boxes_gt (K, 7)``, ``labels_gt``, ``boxes_pred (P, 7)``, ``scores_pred``, ``labels_pred``,
``class_names`` and ``meta`` (``scene_id`` or ``frame_id``; KITTI adds ``calib`` and
``image_size``). Every file is written atomically, so an interrupted run leaves no torn file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
from lightning.pytorch.callbacks import BasePredictionWriter

from pc3d.io import atomic_write, write_text

FORMATS = ("npz", "scannet", "kitti")
NPZ_KEYS = (
    "coord", "color", "segment", "pred", "boxes_gt", "labels_gt", "boxes_pred", "scores_pred", "labels_pred",
)  # fmt: skip


def _numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def record_name(record: Mapping[str, Any]) -> str:
    """``scene_id`` or ``frame_id`` of a prediction record; ``ValueError`` if it has neither."""
    meta = record.get("meta") or {}
    for key in ("scene_id", "frame_id"):
        if meta.get(key):
            return str(meta[key])
    raise ValueError("prediction record: meta has neither 'scene_id' nor 'frame_id', so it cannot be named")


def write_npz(out_dir: str | Path, record: Mapping[str, Any]) -> Path:
    """``<out_dir>/<name>.npz`` with the record's arrays and ``class_names`` (readable by ``pc3d-viz``)."""
    arrays = {k: _numpy(record[k]) for k in NPZ_KEYS if record.get(k) is not None}
    if "class_names" in record:
        arrays["class_names"] = np.asarray(list(record["class_names"]), dtype=str)

    return atomic_write(
        Path(out_dir) / f"{record_name(record)}.npz", lambda f: np.savez_compressed(f, **arrays)
    )


def write_scannet_labels(out_dir: str | Path, record: Mapping[str, Any]) -> Path:
    """ScanNet benchmark label file: one NYU40 id per original vertex, ``<out_dir>/<scene>.txt``."""
    from pc3d.data.scannet.classes import VALID_CLASS_IDS_20

    pred = _numpy(record["pred"]).astype(np.int64).reshape(-1)
    if pred.size and (pred.min() < 0 or pred.max() >= len(VALID_CLASS_IDS_20)):
        raise ValueError(f"pred: ScanNet20 labels must be in 0..{len(VALID_CLASS_IDS_20) - 1}")
    ids = np.asarray(VALID_CLASS_IDS_20, dtype=np.int64)[pred]
    text = "\n".join(map(str, ids.tolist())) + ("\n" if ids.size else "")
    return write_text(Path(out_dir) / f"{record_name(record)}.txt", text)


def write_kitti(out_dir: str | Path, record: Mapping[str, Any]) -> Path:
    """KITTI result file ``<out_dir>/<frame_id>.txt`` from LiDAR-frame predicted boxes."""
    from pc3d.data.kitti.results import write_kitti_result

    meta = record.get("meta") or {}
    for key in ("calib", "image_size"):
        if key not in meta:
            raise ValueError(
                f"prediction record {record_name(record)}: meta['{key}'] is needed for KITTI results"
            )
    return write_kitti_result(
        out_dir,
        record_name(record),
        _numpy(record["boxes_pred"]),
        _numpy(record["scores_pred"]),
        _numpy(record["labels_pred"]),
        list(record["class_names"]),
        meta["calib"],
        meta["image_size"],
    )


WRITERS = {"npz": write_npz, "scannet": write_scannet_labels, "kitti": write_kitti}


class PredictionWriter(BasePredictionWriter):
    """Writes every prediction record of ``pc3d predict`` as it is produced.

    Args:
        output_dir: root folder; each format writes into its own sub-folder
            (``npz/``, ``scannet/``, ``kitti/``).
        formats: any of ``"npz"`` (all arrays, for ``pc3d-viz``), ``"scannet"`` (benchmark label
            txt per scene) and ``"kitti"`` (official result txt per frame).
    """

    def __init__(self, output_dir: str, formats: Sequence[str] = ("npz",)) -> None:
        super().__init__(write_interval="batch")
        unknown = sorted(set(formats) - set(FORMATS))
        if unknown or not formats:
            raise ValueError(f"formats: expected a non-empty subset of {FORMATS}, got {list(formats)}")
        self.output_dir = Path(output_dir)
        self.formats = tuple(formats)
        self.written: list[Path] = []

    def write_on_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        prediction: Any,
        batch_indices: Sequence[int] | None,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        if isinstance(prediction, Mapping):
            prediction = [prediction]
        for record in prediction:
            for fmt in self.formats:
                self.written.append(WRITERS[fmt](self.output_dir / fmt, record))
