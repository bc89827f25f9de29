"""Write inference results next to each other under one output base path.

For a scan whose outputs go to base ``<out>/<name>``:

- segmentation: ``<name>.labels.npy`` (int64, one label per row of the input file, -1 for rows
  dropped as NaN/inf), ``<name>.labels.ply`` (the points, float64 so georeferenced coordinates
  keep their precision, coloured by class, with an int ``label`` attribute; Open3D), ``<name>.json`` (class names, per-class point counts, notes);
- detection: ``<name>.json`` (boxes with class and score; LiDAR frame for sweeps, axis-aligned
  room frame for indoor scans, named in its ``frame`` field, with the ``axis_align`` 4x4 matrix
  that maps the scan's points into it when one was applied) and, for a sweep whose calibration
  is known, the KITTI result file ``<out>/kitti/<name>.txt``;
- ``--render``: ``<name>.png`` (pc3d-viz headless renderer).

Every file is written atomically through :mod:`pc3d.io` (temporary name, fsync, rename; the
user's umask), so an interrupted run leaves no torn file.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from pc3d.infer.cloud import Cloud
from pc3d.infer.detect import Detection
from pc3d.infer.segment import Segmentation
from pc3d.io import atomic_write_path, save_npy, write_text


def _write_json(path: Path, obj) -> Path:
    return write_text(path, json.dumps(obj, indent=1) + "\n")


def _with_suffix(base: Path, suffix: str) -> Path:
    return base.parent / (base.name + suffix)


def write_segmentation(base: Path, cloud: Cloud, result: Segmentation) -> list[Path]:
    """``.labels.npy``, ``.labels.ply`` and ``.json`` of a segmented scan (see the module docstring)."""
    import open3d as o3d

    from pc3d.viz.colors import label_colors

    labels = np.asarray(result.labels, dtype=np.int64)
    npy = save_npy(_with_suffix(base, ".labels.npy"), labels)
    kept = labels[cloud.row_index()]
    pcd = o3d.t.geometry.PointCloud()
    pcd.point.positions = o3d.core.Tensor(np.ascontiguousarray(cloud.coord, dtype=np.float64))
    pcd.point.colors = o3d.core.Tensor(label_colors(kept, result.class_names))
    pcd.point.label = o3d.core.Tensor(kept.astype(np.int32)[:, None])

    def write_ply(tmp: Path) -> None:
        if not o3d.t.io.write_point_cloud(str(tmp), pcd, write_ascii=False):
            raise OSError(f"Open3D could not write {tmp}")

    ply = atomic_write_path(_with_suffix(base, ".labels.ply"), write_ply)
    counts = np.bincount(kept[kept >= 0], minlength=len(result.class_names))
    summary = {
        "input": cloud.source,
        "task": "segmentation",
        "num_rows": int(cloud.num_rows),
        "num_points": int(cloud.num_points),
        "class_names": list(result.class_names),
        "counts": {name: int(c) for name, c in zip(result.class_names, counts)},
        "labels": npy.name,
        "notes": list(result.notes),
    }
    return [npy, ply, _write_json(_with_suffix(base, ".json"), summary)]


def write_detection(base: Path, kitti_dir: Path, cloud: Cloud, result: Detection) -> list[Path]:
    """``.json`` of the boxes and, with a calibration, ``<kitti_dir>/<name>.txt`` (KITTI result format)."""
    from pc3d.data.kitti.results import write_kitti_result

    boxes = []
    for b, s, lab in zip(result.boxes.tolist(), result.scores.tolist(), result.labels.tolist()):
        boxes.append(
            {
                "class": result.class_names[lab],
                "label": int(lab),
                "score": float(s),
                "center": b[0:3],
                "size": b[3:6],
                "heading": b[6],
            }
        )
    summary = {
        "input": cloud.source,
        "task": "detection",
        "frame": result.frame,
        "num_points": int(cloud.num_points),
        "class_names": list(result.class_names),
        "boxes": boxes,
        "notes": list(result.notes),
    }
    if result.axis_align is not None:
        summary["axis_align"] = np.asarray(result.axis_align, np.float64).tolist()
    written = [_write_json(_with_suffix(base, ".json"), summary)]
    if result.calib is not None:
        written.append(
            Path(
                write_kitti_result(
                    kitti_dir,
                    base.name,
                    result.boxes,
                    result.scores,
                    result.labels,
                    result.class_names,
                    result.calib,
                    result.image_size,
                )
            )
        )
    return written


def render_result(
    base: Path, cloud: Cloud, result: Segmentation | Detection, view: str, min_score: float, renderer=None
) -> Path:
    """``<base>.png``: the scan coloured by predicted class (segmentation) or with the predicted
    boxes of score >= ``min_score`` (detection), through :func:`pc3d.viz.render.render_png`."""
    from pc3d.infer.cloud import local_origin
    from pc3d.viz.render import render_png
    from pc3d.viz.scene import Scene

    coord = (cloud.coord - local_origin(cloud.coord)).astype(np.float32)

    if isinstance(result, Segmentation):
        scene = Scene(
            name=base.name,
            coord=coord,
            color=cloud.color,
            pred=np.asarray(result.labels)[cloud.row_index()],
            class_names=tuple(result.class_names),
            kind="indoor",
            source=cloud.source,
        )
        color_by, boxes = "pred", "none"
    else:
        keep = result.scores >= min_score
        if result.axis_align is not None:  # boxes are in the aligned frame: show the points there too
            from pc3d.data.scannet.preprocess import align_points

            coord = align_points(cloud.coord.astype(np.float32), result.axis_align.astype(np.float32))
        scene = Scene(
            name=base.name,
            coord=coord,
            color=cloud.color,
            boxes_pred=result.boxes[keep],
            scores_pred=result.scores[keep],
            labels_pred=result.labels[keep],
            box_class_names=tuple(result.class_names),
            kind=result.scene_kind,
            source=cloud.source,
        )
        color_by, boxes = "rgb", "pred"
    path = _with_suffix(base, ".png")
    kwargs = {"renderer": renderer} if renderer is not None else {}
    return render_png(scene, path, view=view, color_by=color_by, boxes=boxes, min_score=min_score, **kwargs)
