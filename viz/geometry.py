"""What to draw for a scene: coloured points, box wireframes, box captions and a legend.

:func:`scene_layers` turns a :class:`~pc3d.viz.scene.Scene` into plain numpy :class:`Layers`
(no Open3D objects), shared by the headless renderer and the interactive window;
:func:`to_open3d_points` / :func:`to_open3d_lines` convert them.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from pc3d.viz import colors as C
from pc3d.viz.scene import Scene

COLOR_MODES = ("rgb", "gt", "pred", "error")
BOX_MODES = ("auto", "gt", "pred", "both", "none")

#: The 12 edges of a box over :func:`box_corners`' corner order.
BOX_EDGES = np.array(
    [[0, 1], [1, 2], [2, 3], [3, 0], [4, 5], [5, 6], [6, 7], [7, 4], [0, 4], [1, 5], [2, 6], [3, 7]],
    dtype=np.int64,
)


def box_corners(boxes: np.ndarray) -> np.ndarray:
    """Corners ``(M, 8, 3)`` of boxes ``(M, 7)`` ``[x, y, z, dx, dy, dz, yaw]``.

    Corners 0-3 are the bottom face counter-clockwise starting at (+dx/2, +dy/2), 4-7 the top face.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    sx = np.array([1, -1, -1, 1, 1, -1, -1, 1], dtype=np.float64) * 0.5
    sy = np.array([1, 1, -1, -1, 1, 1, -1, -1], dtype=np.float64) * 0.5
    sz = np.array([-1, -1, -1, -1, 1, 1, 1, 1], dtype=np.float64) * 0.5
    local = np.stack(
        [boxes[:, 3:4] * sx, boxes[:, 4:5] * sy, boxes[:, 5:6] * sz], axis=-1
    )  # (M, 8, 3) in the box frame
    c, s = np.cos(boxes[:, 6])[:, None], np.sin(boxes[:, 6])[:, None]
    x = local[..., 0] * c - local[..., 1] * s
    y = local[..., 0] * s + local[..., 1] * c
    return np.stack([x, y, local[..., 2]], -1) + boxes[:, None, :3]


@dataclasses.dataclass
class BoxLayer:
    """Wireframes of a set of boxes.

    Attributes:
        name: ``"gt_boxes"`` or ``"pred_boxes"``.
        points: ``(V, 3)`` line end points.
        lines: ``(L, 2)`` int64 indices into ``points``.
        colors: ``(L, 3)`` uint8 per-line colours.
        captions: one ``(position (3,), text)`` per box ("chair", "Car 0.87").
    """

    name: str
    points: np.ndarray
    lines: np.ndarray
    colors: np.ndarray
    captions: list[tuple[np.ndarray, str]]


@dataclasses.dataclass
class Layers:
    """Everything to draw for one scene and colour mode.

    Attributes:
        coord: ``(N, 3)`` points; ``colors``: ``(N, 3)`` uint8.
        boxes: box wireframe layers (ground truth and/or predictions).
        legend: ``(label, rgb)`` entries for what the colours mean.
        title: one-line description (scene, colouring).
    """

    coord: np.ndarray
    colors: np.ndarray
    boxes: list[BoxLayer]
    legend: list[tuple[str, tuple[int, int, int]]]
    title: str


def box_layer(
    name: str,
    boxes: np.ndarray,
    labels: np.ndarray | None,
    class_names: tuple[str, ...],
    scores: np.ndarray | None = None,
    color: tuple[int, int, int] | None = None,
    heading: bool = False,
) -> BoxLayer:
    """Wireframes of ``boxes (M, 7)``: fixed ``color``, or class colours when ``color`` is ``None``.

    ``heading`` adds a line from the top-face centre to the middle of the front (+dx) top edge.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 7)
    m = boxes.shape[0]
    corners = box_corners(boxes)
    lines = (BOX_EDGES[None] + 8 * np.arange(m)[:, None, None]).reshape(-1, 2)
    pts = corners.reshape(-1, 3)
    if heading and m:
        top = corners[:, 4:8].mean(1)
        front = corners[:, [4, 7]].mean(1)
        base = pts.shape[0]
        pts = np.concatenate([pts, top, front])
        lines = np.concatenate([lines, np.stack([base + np.arange(m), base + m + np.arange(m)], 1)])
    pal = C.palette(class_names) if class_names else np.zeros((0, 3), np.uint8)
    if color is not None:
        box_rgb = np.tile(np.asarray(color, np.uint8), (m, 1))
    elif labels is not None and len(pal):
        box_rgb = pal[np.asarray(labels)]
    else:
        box_rgb = np.tile(np.asarray(C.UNLABELLED_COLOR, np.uint8), (m, 1))
    line_rgb = np.repeat(box_rgb, 12, axis=0)
    if heading and m:
        line_rgb = np.concatenate([line_rgb, box_rgb])
    captions = []
    for j in range(m):
        text = class_names[int(labels[j])] if labels is not None and class_names else "box"
        if scores is not None:
            text += f" {float(scores[j]):.2f}"
        captions.append((corners[j, 4:8].mean(0), text))
    return BoxLayer(name, pts.astype(np.float64), lines.astype(np.int64), line_rgb.astype(np.uint8), captions)


def _class_legend(labels: np.ndarray, class_names: tuple[str, ...]) -> list[tuple[str, tuple[int, int, int]]]:
    present = np.unique(labels)
    pal = C.palette(class_names)
    out = [(class_names[i], tuple(int(v) for v in pal[i])) for i in present if i >= 0]
    if (present < 0).any():
        out.append(("unlabelled", C.UNLABELLED_COLOR))
    return out


def point_colors(scene: Scene, color_by: str) -> tuple[np.ndarray, list[tuple[str, tuple[int, int, int]]]]:
    """Per-point colours ``(N, 3)`` uint8 and the legend for ``color_by`` in :data:`COLOR_MODES`.

    ``rgb`` falls back to a height ramp for clouds without colour. ``gt``/``pred``/``error`` need
    point labels; outdoor scenes with boxes but no point labels are labelled by their boxes.

    Raises:
        ValueError: unknown mode, or the scene lacks what the mode needs.
    """
    if color_by not in COLOR_MODES:
        raise ValueError(f"color_by must be one of {COLOR_MODES}, got {color_by!r}")
    if color_by == "rgb":
        if scene.color is not None:
            return scene.color, []
        ramp = C.height_colors(np.array([0.0, 1.0]))
        return C.height_colors(scene.coord[:, 2]), [
            ("low", tuple(map(int, ramp[0]))),
            ("high", tuple(map(int, ramp[1]))),
        ]
    scene = scene.with_box_point_labels()
    if color_by == "gt":
        if scene.segment is None:
            raise ValueError(f"{scene._where()} has no ground-truth labels or boxes; use color_by='rgb'")
        return C.label_colors(scene.segment, scene.class_names), _class_legend(
            scene.segment, scene.class_names
        )
    if scene.pred is None:
        raise ValueError(f"{scene._where()} has no predicted labels or boxes; use color_by='rgb' or 'gt'")
    if color_by == "pred":
        return C.label_colors(scene.pred, scene.class_names), _class_legend(scene.pred, scene.class_names)
    if scene.segment is None:
        raise ValueError(
            f"{scene._where()} has predictions but no ground truth to compare with (color_by='error')"
        )
    ignore = not scene.point_labels_from_boxes
    legend = [("correct", C.CORRECT_COLOR), ("wrong", C.WRONG_COLOR)]
    if ignore and (scene.segment < 0).any():
        legend.append(("ignored", C.IGNORE_COLOR))
    return C.error_colors(scene.segment, scene.pred, ignore), legend


def resolve_boxes(scene: Scene, color_by: str, boxes: str) -> tuple[bool, bool]:
    """Which box sets to draw, ``(gt, pred)``, for a :data:`BOX_MODES` choice (``auto`` follows ``color_by``)."""
    if boxes not in BOX_MODES:
        raise ValueError(f"boxes must be one of {BOX_MODES}, got {boxes!r}")
    if boxes == "auto":
        boxes = {"gt": "gt", "pred": "pred"}.get(color_by, "both")
    gt = boxes in ("gt", "both") and scene.boxes_gt is not None
    pred = boxes in ("pred", "both") and scene.boxes_pred is not None
    return gt, pred


def scene_layers(
    scene: Scene,
    color_by: str = "rgb",
    boxes: str = "auto",
    box_color: str = "source",
    min_score: float = 0.0,
) -> Layers:
    """Build the :class:`Layers` of ``scene``.

    Args:
        color_by: point colouring, one of :data:`COLOR_MODES`.
        boxes: which boxes, one of :data:`BOX_MODES`.
        box_color: ``"source"`` (ground truth green, predictions magenta) or ``"class"`` (class colours).
        min_score: predicted boxes below this score are not drawn.
    """
    if box_color not in ("source", "class"):
        raise ValueError(f"box_color must be 'source' or 'class', got {box_color!r}")
    colors, legend = point_colors(scene, color_by)
    want_gt, want_pred = resolve_boxes(scene, color_by, boxes)
    heading = scene.kind == "outdoor"
    layers = []
    if want_gt:
        fixed = C.GT_BOX_COLOR if box_color == "source" else None
        layers.append(
            box_layer(
                "gt_boxes", scene.boxes_gt, scene.labels_gt, scene.box_class_names, None, fixed, heading
            )
        )
        if box_color == "source":
            legend = [*legend, ("ground-truth box", C.GT_BOX_COLOR)]
    if want_pred:
        keep = np.ones(scene.boxes_pred.shape[0], bool)
        if scene.scores_pred is not None:
            keep = scene.scores_pred >= min_score
        sel = lambda a: None if a is None else a[keep]  # noqa: E731
        fixed = C.PRED_BOX_COLOR if box_color == "source" else None
        layers.append(
            box_layer(
                "pred_boxes",
                scene.boxes_pred[keep],
                sel(scene.labels_pred),
                scene.box_class_names,
                sel(scene.scores_pred),
                fixed,
                heading,
            )
        )
        if box_color == "source":
            legend = [*legend, ("predicted box", C.PRED_BOX_COLOR)]
    title = f"{scene.name}: {color_by}"
    return Layers(scene.coord, colors, layers, legend, title)


def to_open3d_points(coord: np.ndarray, colors: np.ndarray):
    """An ``open3d.geometry.PointCloud`` from ``(N, 3)`` points and ``(N, 3)`` uint8 colours."""
    import open3d as o3d

    pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(coord, dtype=np.float64)))
    pcd.colors = o3d.utility.Vector3dVector(np.asarray(colors, dtype=np.float64) / 255.0)
    return pcd


def to_open3d_lines(layer: BoxLayer):
    """An ``open3d.geometry.LineSet`` from a :class:`BoxLayer`."""
    import open3d as o3d

    ls = o3d.geometry.LineSet(
        o3d.utility.Vector3dVector(layer.points), o3d.utility.Vector2iVector(layer.lines.astype(np.int32))
    )
    ls.colors = o3d.utility.Vector3dVector(layer.colors.astype(np.float64) / 255.0)
    return ls
