"""Adapters from the dataset readers of ``pc3d.data`` to the arrays the visualizer draws.

- ScanNet (raw and preprocessed): :mod:`pc3d.data.scannet` (labels via the aggregation, the
  over-segmentation and ``scannetv2-labels.combined.tsv``; boxes axis-aligned in the aligned frame).
- KITTI: :mod:`pc3d.data.kitti` (velodyne, ``label_2``, calib; LiDAR boxes
  ``[x, y, z, l, w, h, heading]`` with the geometric centre).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

#: KITTI object types in label order (the first three are the benchmark classes).
KITTI_CLASSES = ("Car", "Pedestrian", "Cyclist", "Van", "Truck", "Person_sitting", "Tram", "Misc")

LABEL_TSV = "scannetv2-labels.combined.tsv"


def scannet_classes() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(20 segmentation class names, 18 detection class names)``."""
    from pc3d.data.scannet import SCANNET20_CLASSES, SCANNET_DET_CLASSES

    return tuple(SCANNET20_CLASSES), tuple(SCANNET_DET_CLASSES)


def apply_transform(coord: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``(N, 3)`` float32 points through a ``(4, 4)`` transform: ``[p, 1] @ M.T``."""
    from pc3d.data.scannet import align_points

    return align_points(np.asarray(coord), np.asarray(m))


def find_label_tsv(scan_dir: Path, levels: int = 3) -> Path | None:
    """``meta/scannetv2-labels.combined.tsv`` (or the tsv itself) in ``scan_dir`` or up to ``levels`` above."""
    for d in [scan_dir, *list(scan_dir.parents)[:levels]]:
        for cand in (d / "meta" / LABEL_TSV, d / LABEL_TSV):
            if cand.is_file():
                return cand
    return None


def read_raw_scannet(path: str | Path) -> dict:
    """A raw ScanNet scan (its folder or ``<scene>_vh_clean_2.ply``) through
    :func:`pc3d.data.scannet.convert_scene`.

    Returns ``scene_id``, ``coord (N, 3)`` original frame, ``color (N, 3)``, ``axis_align (4, 4)``
    and, when the annotation files and the label tsv (see :func:`find_label_tsv`) exist,
    ``segment20 (N,)``, ``boxes (K, 7)`` and ``box_labels (K,)``.
    """
    from pc3d.data.scannet.preprocess import convert_scene, raw_scene_files
    from pc3d.data.scannet.raw import read_label_tsv

    path = Path(path)
    scan_dir = path if path.is_dir() else path.parent
    if path.is_file() and path.name != f"{scan_dir.name}_vh_clean_2.ply":
        raise ValueError(f"{path}: a raw ScanNet mesh must sit in its scan folder as <scene>_vh_clean_2.ply")
    files = raw_scene_files(scan_dir)
    tsv = find_label_tsv(scan_dir)
    labelled = tsv is not None and files["segs"].is_file() and files["aggregation"].is_file()
    if labelled:
        table = read_label_tsv(tsv)
    else:
        from pc3d.data.scannet.raw import LabelTable

        table = LabelTable({}, {})
    arrays = convert_scene(scan_dir, table, with_labels=labelled)["arrays"]
    out = {k: arrays[k] for k in ("coord", "color", "axis_align")}
    out["scene_id"] = scan_dir.name
    if labelled:
        out.update(segment20=arrays["segment20"], boxes=arrays["boxes"], box_labels=arrays["box_labels"])
    return out


def read_preprocessed_scannet(path: str | Path) -> dict[str, np.ndarray]:
    """The arrays of a preprocessed ScanNet scene folder (:func:`pc3d.data.scannet.load_scene`)."""
    from pc3d.data.scannet import load_scene

    return load_scene(path, keys=("coord", "color", "segment20", "axis_align", "boxes", "box_labels"))


def read_kitti_frame(path: str | Path) -> dict:
    """A raw KITTI frame from ``velodyne/<id>.bin``: ``frame_id``, ``coord (N, 3)``, ``intensity (N,)``
    and, when ``../label_2/<id>.txt`` and ``../calib/<id>.txt`` exist, LiDAR ``boxes (K, 7)`` and
    ``box_labels (K,)`` (indices into :data:`KITTI_CLASSES`; DontCare dropped)."""
    from pc3d.data.kitti.calib import Calibration
    from pc3d.data.kitti.io import read_velodyne
    from pc3d.data.kitti.labels import anno_to_lidar_boxes, read_label

    path = Path(path)
    pts = read_velodyne(path)
    out: dict = {"frame_id": path.stem, "coord": pts[:, :3].copy(), "intensity": pts[:, 3].copy()}
    label = path.parent.parent / "label_2" / f"{path.stem}.txt"
    calib = path.parent.parent / "calib" / f"{path.stem}.txt"
    if label.is_file() and calib.is_file():
        anno = read_label(label)
        keep = anno["name"] != "DontCare"
        unknown = sorted(set(anno["name"][keep]) - set(KITTI_CLASSES))
        if unknown:
            raise ValueError(f"{label}: unknown object types {unknown}; expected {KITTI_CLASSES} or DontCare")
        boxes = anno_to_lidar_boxes(anno, Calibration.from_file(calib))[keep]
        out["boxes"] = boxes.astype(np.float32)
        out["box_labels"] = np.array([KITTI_CLASSES.index(n) for n in anno["name"][keep]], dtype=np.int64)
    return out
