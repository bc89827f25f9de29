"""3D box detection in a room scan with a ScanNet-datamodule detection checkpoint (VoteNet head).

The scan goes through the datamodule's own test-time input pipeline: the ScanNet axis alignment
(``axisAlignment`` of the scene's ``<scene>.txt``, applied as :func:`pc3d.data.scannet.preprocess.align_points`
does for the dataset), :func:`pc3d.data.scannet.pipelines.det_input_pipeline` (height above the
floor, ``num_points`` sampled points with the test-stage generator of the trained seed) and
:func:`pc3d.data.scannet.dataset.det_input_sample` (height, plus colour when the model was
trained with it), then the task's ``predict_step`` decodes boxes.

Frame: the model was trained on axis-aligned rooms (z up, metres, walls along x and y). A scan
given with its alignment matrix is aligned with it; a scan given without one is taken to be
aligned already. Boxes are returned in the aligned frame.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from pc3d.infer.checkpoint import CheckpointError, TrainedTask
from pc3d.infer.cloud import Cloud, InputError, as_cloud
from pc3d.infer.detect import Detection

INDOOR_FRAME = (
    "ScanNet axis-aligned room (z up, metres; the scan's axisAlignment applied when given); "
    "box = centre, size (dx, dy, dz), heading about +z"
)


def find_scannet_alignment(path: str | Path) -> Path | None:
    """For a scan ``<dir>/<scene>...`` in a ScanNet layout (e.g. ``scans/scene0000_00/
    scene0000_00_vh_clean_2.ply``): ``<dir>/<scene>.txt`` when it exists, else ``None``."""
    path = Path(path)
    scene = path.parent.name
    txt = path.parent / f"{scene}.txt"
    if scene and path.name.startswith(scene) and path != txt and txt.is_file():
        return txt
    return None


def read_alignment(axis_align: np.ndarray | str | Path) -> np.ndarray | None:
    """A ``(4, 4)`` alignment matrix from an array or a ScanNet ``<scene>.txt`` (``None`` when the
    file has no ``axisAlignment``, as ScanNet test scans).

    Raises:
        InputError: a matrix of another shape, non-finite values or an unreadable file.
    """
    if isinstance(axis_align, (str, Path)):
        from pc3d.data.scannet.raw import RawSceneError, read_axis_alignment

        try:
            return read_axis_alignment(axis_align)
        except (RawSceneError, OSError) as err:
            raise InputError(f"--axis-align {axis_align}: {err}") from err
    m = np.asarray(axis_align, dtype=np.float64)
    if m.shape != (4, 4) or not np.isfinite(m).all():
        raise InputError(f"axis_align: expected a finite (4, 4) matrix, got shape {m.shape}")
    return m


class IndoorDetectionPredictor:
    """Detects boxes in a room scan with a ScanNet-datamodule detection checkpoint.

    Args:
        task: the loaded checkpoint.
        missing_color: ``"error"`` (default) or ``"gray"``: for a model trained with colour
            (``use_color_det``), colour every point of a scan without colours (128, 128, 128).
        device: torch device.
    """

    kind = "indoor-detection"

    def __init__(
        self, task: TrainedTask, missing_color: str = "error", device: str | torch.device = "cpu"
    ) -> None:
        from pc3d.data.scannet.classes import SCANNET_DET_CLASSES
        from pc3d.data.scannet.pipelines import det_input_pipeline

        dm = task.datamodule
        if getattr(dm, "task", None) != "det":
            raise CheckpointError(
                f"--ckpt {task.path}: datamodule task {getattr(dm, 'task', None)!r} is not 'det'"
            )
        if missing_color not in ("error", "gray"):
            raise ValueError(f"missing_color: expected 'error' or 'gray', got {missing_color!r}")
        self.task = task
        self.module = task.module.to(device)
        self.device = torch.device(device)
        self.class_names = list(getattr(task.module, "class_names", None) or SCANNET_DET_CLASSES)
        self.num_points = int(dm.det_aug.num_points)
        self.use_color = bool(dm.use_color_det)
        self.seed = int(dm.seed)
        self.pipeline = det_input_pipeline(self.num_points)
        self.missing_color = missing_color

    def describe(self) -> str:
        """One line: what the model takes and how the scan is preprocessed."""
        inputs = "x, y, z" + (", colour" if self.use_color else "")
        return (
            f"indoor detection of {len(self.class_names)} classes; input {inputs} (room frame: z up, "
            f"metres; axis-aligned with the scan's axisAlignment when given); height above the floor, "
            f"{self.num_points} points sampled"
        )

    @torch.no_grad()
    def predict(
        self,
        points: np.ndarray | Cloud,
        colors: np.ndarray | None = None,
        axis_align: np.ndarray | str | Path | None = None,
    ) -> Detection:
        """Boxes for ``points (N, 3)`` (or a :class:`Cloud`), ``colors (N, 3)`` uint8 or [0, 1] floats.

        ``axis_align``: the scan's ``(4, 4)`` alignment (``[p, 1] @ M.T``) or a ScanNet
        ``<scene>.txt`` holding ``axisAlignment``; ``None``: the scan is already axis-aligned.
        """
        from pc3d.data.batch import PointBatch
        from pc3d.data.scannet.dataset import det_input_sample, sample_rng
        from pc3d.data.scannet.preprocess import align_points

        cloud = as_cloud(points, colors)
        notes = []
        if self.use_color and cloud.color is None:
            if self.missing_color == "error":
                raise InputError(
                    f"{cloud.source}: the model was trained with colours and the scan has none "
                    "(use --missing-color gray to run with a constant grey)"
                )
            cloud = dataclasses.replace(cloud, color=np.full((cloud.num_points, 3), 128, np.uint8))
            notes.append("no colours: constant grey")
        matrix = None
        if axis_align is not None:
            matrix = read_alignment(axis_align)
            if matrix is None:
                notes.append(f"no axisAlignment in {axis_align}: scan taken as aligned")
        coord = cloud.coord.astype(np.float32)
        if matrix is not None:
            matrix = matrix.astype(np.float32)  # as stored by `pc3d-data scannet`
            coord = align_points(coord, matrix)
        data = {"coord": coord}
        if self.use_color:
            data["color"] = cloud.color.astype(np.float32)
        data = self.pipeline(data, sample_rng(self.seed, "test", 0, 0))
        sample = det_input_sample(data, self.use_color, {})
        batch = PointBatch.collate([sample]).to(self.device)
        (record,) = self.module.predict_step(batch, 0)
        return Detection(
            boxes=record["boxes_pred"].numpy().astype(np.float32).reshape(-1, 7),
            scores=record["scores_pred"].numpy().astype(np.float32).reshape(-1),
            labels=record["labels_pred"].numpy().astype(np.int64).reshape(-1),
            class_names=self.class_names,
            num_input_points=cloud.num_points,
            notes=notes,
            frame=INDOOR_FRAME,
            scene_kind="indoor",
            axis_align=None if matrix is None else matrix.astype(np.float64),
        )
