"""3D box detection on a LiDAR sweep with a KITTI-datamodule checkpoint's own test-time pipeline.

The sweep is reduced to the camera field of view when a calibration is known (as ``pc3d-data
kitti`` does), then :func:`pc3d.data.kitti.dataset.frame_points` applies the trained point range
and point sampling, and the task's ``predict_step`` decodes boxes. Without a calibration the whole
sweep inside the point range is used (documented fallback: the model saw only FOV points in
training, so detections outside the camera view are extrapolation).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from pc3d.infer.checkpoint import TrainedTask
from pc3d.infer.cloud import Cloud, InputError, as_cloud

LIDAR_FRAME = "lidar (x forward, y left, z up; metres); box = centre, size (l, w, h), heading about +z"


@dataclasses.dataclass
class Detection:
    """Boxes of one scan: ``boxes (P, 7)`` ``[x, y, z, l, w, h, heading]`` (centre, sizes, yaw
    about +z) in the frame that ``frame`` describes (LiDAR for sweeps; the axis-aligned room for
    indoor scans), ``scores (P,)``, ``labels (P,)`` into ``class_names``; ``calib``/``image_size``
    when known (needed for KITTI result files); ``scene_kind`` (``"outdoor"``/``"indoor"``);
    ``axis_align (4, 4)``, the alignment applied to the scan's points before detection (``None``:
    none), and ``notes``."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    calib: dict | None = None
    image_size: tuple[int, int] | None = None
    num_input_points: int = 0
    notes: list[str] = dataclasses.field(default_factory=list)
    frame: str = LIDAR_FRAME
    scene_kind: str = "outdoor"
    axis_align: np.ndarray | None = None


def find_kitti_calib(path: str | Path) -> tuple[Path | None, tuple[int, int] | None]:
    """For ``<root>/velodyne/<id>.bin`` in a KITTI layout: ``<root>/calib/<id>.txt`` (if present)
    and the size of ``<root>/image_2/<id>.png`` (if present)."""
    from pc3d.data.kitti.io import read_image_size

    path = Path(path)
    if path.parent.name != "velodyne":
        return None, None
    calib = path.parent.parent / "calib" / f"{path.stem}.txt"
    image = path.parent.parent / "image_2" / f"{path.stem}.png"
    return (calib if calib.is_file() else None), (read_image_size(image) if image.is_file() else None)


class DetectionPredictor:
    """Detects boxes with a KITTI-datamodule detection checkpoint.

    Args:
        task: the loaded checkpoint.
        missing_intensity: reflectance given to every point of a scan without one (``None``:
            such a scan is an error; the model was trained with reflectance).
        device: torch device.
    """

    kind = "detection"

    def __init__(
        self, task: TrainedTask, missing_intensity: float | None = None, device: str | torch.device = "cpu"
    ) -> None:
        dm = task.datamodule
        self.task = task
        self.module = task.module.to(device)
        self.device = torch.device(device)
        self.class_names = list(getattr(task.module, "class_names", None) or dm.classes)
        self.point_range = tuple(float(v) for v in dm.common["point_range"])
        self.num_points = int(dm.common["num_points"])
        self.seed = int(dm.aug["seed"])
        self.missing_intensity = missing_intensity

    def describe(self) -> str:
        return (
            f"detection of {', '.join(self.class_names)}; input x, y, z, reflectance (LiDAR frame: x forward, "
            f"y left, z up, metres); point range {list(self.point_range)}, {self.num_points} points sampled; "
            "camera-FOV crop when a calibration is known"
        )

    @torch.no_grad()
    def predict(
        self,
        points: np.ndarray | Cloud,
        intensity: np.ndarray | None = None,
        calib=None,
        image_size: tuple[int, int] | None = None,
    ) -> Detection:
        """Boxes for ``points (N, 3)`` or ``(N, 4)`` (last column reflectance) or a :class:`Cloud`.

        ``calib``: a :class:`pc3d.data.kitti.Calibration`, its dict, or a KITTI calib file path;
        with it the sweep is cropped to camera 2's field of view of ``image_size`` (default KITTI's
        1242x375) and KITTI result files can be written.
        """
        from pc3d.data.batch import PointBatch
        from pc3d.data.kitti.calib import Calibration, fov_mask
        from pc3d.data.kitti.dataset import frame_points
        from pc3d.data.kitti.io import DEFAULT_IMAGE_SIZE

        cloud = as_cloud(points, intensity=intensity)
        notes = []
        if cloud.intensity is None:
            if self.missing_intensity is None:
                raise InputError(
                    f"{cloud.source}: the model takes reflectance and the scan has none "
                    "(use --missing-intensity VALUE, e.g. 0.3, to give every point one)"
                )
            cloud = dataclasses.replace(
                cloud, intensity=np.full(cloud.num_points, self.missing_intensity, np.float32)
            )
            notes.append(f"no reflectance: {self.missing_intensity:g} everywhere")
        pts = np.concatenate([cloud.coord, cloud.intensity[:, None]], axis=1).astype(np.float32)
        cal = None
        if calib is not None:
            cal = (
                calib
                if isinstance(calib, Calibration)
                else (
                    Calibration.from_dict(calib) if isinstance(calib, dict) else Calibration.from_file(calib)
                )
            )
            image_size = tuple(int(v) for v in (image_size or DEFAULT_IMAGE_SIZE))
            pts = pts[fov_mask(cal, pts[:, :3], image_size)]
            notes.append(f"camera FOV: {len(pts)} of {cloud.num_points} points")
        else:
            notes.append("no calibration: whole sweep (no FOV crop)")
        if len(pts) == 0:
            raise InputError(f"{cloud.source}: no point inside the camera field of view")
        sel = frame_points(pts, self.point_range, self.num_points, np.random.default_rng([self.seed, 0]))
        if len(sel) == 0:
            raise InputError(
                f"{cloud.source}: no point inside the trained point range {list(self.point_range)} "
                "(is the scan in the LiDAR frame, in metres?)"
            )
        sample = {"coord": sel[:, :3], "feat": sel[:, 3:4], "meta": {}}
        batch = PointBatch.collate([sample]).to(self.device)
        (record,) = self.module.predict_step(batch, 0)
        return Detection(
            boxes=record["boxes_pred"].numpy().astype(np.float32).reshape(-1, 7),
            scores=record["scores_pred"].numpy().astype(np.float32).reshape(-1),
            labels=record["labels_pred"].numpy().astype(np.int64).reshape(-1),
            class_names=self.class_names,
            calib=None if cal is None else cal.to_dict(),
            image_size=None if cal is None else image_size,
            num_input_points=cloud.num_points,
            notes=notes,
        )
