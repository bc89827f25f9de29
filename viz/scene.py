"""The renderable :class:`Scene` and the loaders that build one from the inputs ``pc3d-viz`` accepts.

Inputs (see :func:`load_scene`):

- a preprocessed ScanNet scene directory ``<out>/scans/<scene>/`` (``coord.npy`` ...);
- a raw ScanNet scan: the ``<scene>/`` directory or its ``<scene>_vh_clean_2.ply``;
- a raw KITTI frame: ``training/velodyne/<id>.bin`` (``label_2`` and ``calib`` are found next to it);
- a prediction file ``<scene>.npz`` (keys in :data:`NPZ_KEYS`).

All geometry of a scene lives in one frame: ScanNet scenes are moved into the axis-aligned frame
(where their boxes are), KITTI frames stay in the LiDAR frame (x forward, y left, z up).
"""

from __future__ import annotations

import dataclasses
import warnings
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pc3d.viz import readers

#: Keys of a prediction/scene ``.npz`` file (all optional).
NPZ_KEYS = (
    "coord",
    "color",
    "segment",
    "pred",
    "boxes_gt",
    "labels_gt",
    "boxes_pred",
    "scores_pred",
    "labels_pred",
    "class_names",
    "box_class_names",
    "axis_align",
    "kind",
    "name",
)


class NonFiniteWarning(UserWarning):
    """Points or boxes with NaN/inf values were dropped from a scene."""


@dataclasses.dataclass
class Scene:
    """One point cloud with optional labels, predictions and boxes, ready to render.

    Attributes:
        name: scene id shown in titles and used for file names.
        coord: ``(N, 3)`` float32 points.
        color: ``(N, 3)`` uint8 RGB, or ``None``.
        segment: ``(N,)`` int64 ground-truth point labels (-1 = unlabelled), or ``None``.
        pred: ``(N,)`` int64 predicted point labels, or ``None``.
        class_names: names of the point labels ``segment``/``pred``.
        boxes_gt: ``(K, 7)`` float32 ``[x, y, z, dx, dy, dz, yaw]``, or ``None``.
        labels_gt: ``(K,)`` int64 indices into ``box_class_names``.
        boxes_pred: ``(P, 7)`` float32, or ``None``.
        scores_pred: ``(P,)`` float32, or ``None``; with scores, the predicted boxes are kept in
            descending score order (so the best box's caption wins where captions would overlap).
        labels_pred: ``(P,)`` int64.
        box_class_names: names of the box labels.
        kind: ``"indoor"`` (ScanNet-like room) or ``"outdoor"`` (KITTI-like LiDAR sweep); picks camera presets.
        source: where the scene came from (for messages).
        point_labels_from_boxes: ``True`` when ``segment``/``pred`` were derived from the boxes
            (points inside a box get its class); then ``class_names == box_class_names``.
        kept_points: ``(N0,)`` bool mask of the points of the input that were kept (``None`` when
            all were): points with a NaN/inf coordinate are dropped with a
            :class:`NonFiniteWarning`, and so are boxes with a NaN/inf parameter or score.
    """

    name: str
    coord: np.ndarray
    color: np.ndarray | None = None
    segment: np.ndarray | None = None
    pred: np.ndarray | None = None
    class_names: tuple[str, ...] = ()
    boxes_gt: np.ndarray | None = None
    labels_gt: np.ndarray | None = None
    boxes_pred: np.ndarray | None = None
    scores_pred: np.ndarray | None = None
    labels_pred: np.ndarray | None = None
    box_class_names: tuple[str, ...] = ()
    kind: str = "indoor"
    source: str = ""
    point_labels_from_boxes: bool = False
    kept_points: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.coord = _array(self.coord, "coord", np.float32, (None, 3), self)
        n = self.coord.shape[0]
        self.color = _array(self.color, "color", None, (n, 3), self)
        if self.color is not None and self.color.size and self.color.dtype.kind not in "biuf":
            raise ValueError(f"{self._where()}: color must be numeric RGB, got dtype {self.color.dtype}")
        if self.color is not None and self.color.dtype != np.uint8:
            c = np.nan_to_num(self.color.astype(np.float64))
            self.color = np.clip(np.round(c * 255.0 if c.size and c.max() <= 1.0 else c), 0, 255).astype(
                np.uint8
            )
        self.segment = _array(self.segment, "segment", np.int64, (n,), self)
        self.pred = _array(self.pred, "pred", np.int64, (n,), self)
        self.boxes_gt = _array(self.boxes_gt, "boxes_gt", np.float32, (None, 7), self)
        k = None if self.boxes_gt is None else self.boxes_gt.shape[0]
        self.labels_gt = _array(self.labels_gt, "labels_gt", np.int64, (k,), self)
        self.boxes_pred = _array(self.boxes_pred, "boxes_pred", np.float32, (None, 7), self)
        p = None if self.boxes_pred is None else self.boxes_pred.shape[0]
        self.scores_pred = _array(self.scores_pred, "scores_pred", np.float32, (p,), self)
        self.labels_pred = _array(self.labels_pred, "labels_pred", np.int64, (p,), self)
        self._drop_non_finite()
        if self.scores_pred is not None and len(self.scores_pred) > 1:  # best first: captions, overlaps
            order = np.argsort(-self.scores_pred, kind="stable")
            self.boxes_pred, self.scores_pred = self.boxes_pred[order], self.scores_pred[order]
            if self.labels_pred is not None:
                self.labels_pred = self.labels_pred[order]
        self.class_names = tuple(str(c) for c in self.class_names)
        self.box_class_names = tuple(str(c) for c in self.box_class_names)
        if self.kind not in ("indoor", "outdoor"):
            raise ValueError(f"{self._where()}: kind must be 'indoor' or 'outdoor', got {self.kind!r}")
        for field, names in (("segment", self.class_names), ("pred", self.class_names)):
            arr = getattr(self, field)
            if arr is not None and arr.size and arr.max() >= len(names):
                raise ValueError(
                    f"{self._where()}: {field} has label {int(arr.max())} but only {len(names)} class names"
                )
            if arr is not None and arr.size and arr.min() < -1:
                raise ValueError(
                    f"{self._where()}: {field} has label {int(arr.min())}; expected -1 (unlabelled) or a class index"
                )
        for field in ("labels_gt", "labels_pred"):
            arr = getattr(self, field)
            if arr is not None and arr.size and (arr.max() >= len(self.box_class_names) or arr.min() < 0):
                raise ValueError(
                    f"{self._where()}: {field} holds {int(arr.min())}..{int(arr.max())}, "
                    f"expected 0..{len(self.box_class_names) - 1} (box_class_names)"
                )

    def _drop_non_finite(self) -> None:
        """Drop points with a NaN/inf coordinate (with their colours and labels) and boxes with a
        NaN/inf parameter or score, warning with the count; ``ValueError`` when no point is left."""
        finite = np.isfinite(self.coord).all(axis=1)
        if not finite.all():
            n, bad = finite.size, int((~finite).sum())
            if bad == n:
                raise ValueError(f"{self._where()}: all {n} points have NaN/inf coordinates; nothing to draw")
            warnings.warn(
                f"{self._where()}: dropped {bad} of {n} points with NaN/inf coordinates",
                NonFiniteWarning,
                stacklevel=4,
            )
            for field in ("coord", "color", "segment", "pred"):
                arr = getattr(self, field)
                if arr is not None:
                    setattr(self, field, arr[finite])
            prior = self.kept_points
            if prior is not None and prior.sum() == n:
                kept = prior.copy()
                kept[prior] = finite
                finite = kept
            self.kept_points = finite
        for boxes, others in (("boxes_gt", ("labels_gt",)), ("boxes_pred", ("scores_pred", "labels_pred"))):
            arr = getattr(self, boxes)
            if arr is None:
                continue
            ok = np.isfinite(arr).all(axis=1)
            score = self.scores_pred if boxes == "boxes_pred" else None
            if score is not None:
                ok &= np.isfinite(score)
            if ok.all():
                continue
            warnings.warn(
                f"{self._where()}: dropped {int((~ok).sum())} of {ok.size} {boxes} with NaN/inf values",
                NonFiniteWarning,
                stacklevel=4,
            )
            setattr(self, boxes, arr[ok])
            for field in others:
                if getattr(self, field) is not None:
                    setattr(self, field, getattr(self, field)[ok])

    def _where(self) -> str:
        return f"scene {self.name!r}" + (f" ({self.source})" if self.source else "")

    @property
    def has_gt(self) -> bool:
        """Whether there are ground-truth point labels or boxes."""
        return self.segment is not None or self.boxes_gt is not None

    @property
    def has_pred(self) -> bool:
        """Whether there are predicted point labels or boxes."""
        return self.pred is not None or self.boxes_pred is not None

    def with_box_point_labels(self) -> Scene:
        """Outdoor scenes without point labels: label each point by the box that contains it.

        Returns a copy where ``segment`` comes from ``boxes_gt`` and ``pred`` from ``boxes_pred``
        (-1 outside every box) and ``class_names = box_class_names``; ``self`` if the scene already
        has point labels or no boxes.
        """
        from pc3d.kernels.boxes import points_in_boxes

        if self.segment is not None or self.pred is not None or not self.box_class_names:
            return self
        if self.boxes_gt is None and self.boxes_pred is None:
            return self

        def labels(boxes, box_labels):
            if boxes is None:
                return None
            idx = points_in_boxes(self.coord, boxes)
            out = np.full(self.coord.shape[0], -1, dtype=np.int64)
            inside = idx >= 0
            out[inside] = box_labels[idx[inside]]
            return out

        return dataclasses.replace(
            self,
            segment=labels(self.boxes_gt, self.labels_gt),
            pred=labels(self.boxes_pred, self.labels_pred),
            class_names=self.box_class_names,
            point_labels_from_boxes=True,
        )


def _array(value, field: str, dtype, shape: tuple, scene: Scene) -> np.ndarray | None:
    if value is None:
        return None
    if hasattr(value, "detach"):  # torch tensor
        value = value.detach().cpu().numpy()
    arr = np.asarray(value)
    if dtype is not None:
        if arr.size and arr.dtype.kind not in "biuf":
            raise ValueError(f"{scene._where()}: {field} must be a real numeric array, got dtype {arr.dtype}")
        if np.issubdtype(dtype, np.integer) and arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{scene._where()}: {field} must hold integers, got dtype {arr.dtype}")
        arr = arr.astype(dtype, copy=False)
    ok = arr.ndim == len(shape) and all(s is None or s == d for s, d in zip(shape, arr.shape))
    if not ok and arr.size == 0 and len(shape) == 2:
        arr = arr.reshape(0, shape[1])
        ok = shape[0] in (None, 0)
    if not ok:
        dims = ["N" if s is None else str(s) for s in shape]
        want = f"({dims[0]},)" if len(dims) == 1 else "(" + ", ".join(dims) + ")"
        raise ValueError(f"{scene._where()}: {field} has shape {arr.shape}, expected {want}")
    return arr


def _numeric(value: Any, field: str, where: str, dtype) -> np.ndarray:
    arr = np.asarray(value)
    if arr.size and arr.dtype.kind not in "biuf":
        raise ValueError(f"{where}: {field} must be a real numeric array, got dtype {arr.dtype}")
    return arr.astype(dtype, copy=False)


def _names(value: Any, field: str, where: str) -> tuple[str, ...]:
    arr = np.asarray(value)
    if arr.dtype.kind not in "USO" and arr.size:
        raise ValueError(f"{where}: {field} must hold strings, got dtype {arr.dtype}")
    return tuple(str(c) for c in arr.reshape(-1))


def _scalar_text(value: Any, field: str, where: str) -> str:
    arr = np.asarray(value).reshape(-1)
    if arr.size != 1 or arr.dtype.kind not in "USO":
        raise ValueError(f"{where}: {field} must be one string, got {arr.size} value(s) of dtype {arr.dtype}")
    return str(arr[0])


def scene_from_dict(data: Mapping[str, Any], name: str | None = None, source: str = "") -> Scene:
    """Build a :class:`Scene` from a dict in the prediction-file format (:data:`NPZ_KEYS`).

    ``class_names`` names the point labels and, unless ``box_class_names`` is given, the box
    labels too. ``axis_align (4, 4)``, when present, is applied to ``coord`` (``[p, 1] @ M.T``).
    ``kind`` defaults to ``"outdoor"`` when there are boxes with a non-zero yaw, else ``"indoor"``.
    """
    unknown = sorted(set(data) - set(NPZ_KEYS))
    if unknown:
        raise ValueError(
            f"{source or 'scene dict'}: unknown keys {unknown}; expected some of {list(NPZ_KEYS)}"
        )
    if "coord" not in data:
        raise ValueError(
            f"{source or 'scene dict'}: has no 'coord' (N, 3) array, so there is nothing to draw"
        )
    where = source or "scene dict"
    d = {k: (v.detach().cpu().numpy() if hasattr(v, "detach") else v) for k, v in data.items()}
    coord = _numeric(d["coord"], "coord", where, np.float32)
    if "axis_align" in d:
        m = _numeric(d["axis_align"], "axis_align", where, np.float64)
        if m.shape != (4, 4):
            raise ValueError(f"{where}: axis_align has shape {m.shape}, expected (4, 4)")
        if not np.isfinite(m).all():
            raise ValueError(f"{where}: axis_align holds NaN/inf; expected a finite (4, 4) transform")
        if coord.ndim == 2 and coord.shape[1] == 3:
            coord = readers.apply_transform(coord, m)
    class_names = _names(d.get("class_names", ()), "class_names", where)
    box_names = d.get("box_class_names")
    box_names = class_names if box_names is None else _names(box_names, "box_class_names", where)
    if "name" in d:
        name = _scalar_text(d["name"], "name", where)
    kind = _scalar_text(d["kind"], "kind", where) if "kind" in d else None
    if kind is None:
        yaws = []
        for k in ("boxes_gt", "boxes_pred"):
            b = np.asarray(d.get(k, ()))
            if b.size and b.ndim == 2 and b.shape[1] == 7 and b.dtype.kind in "iuf":
                yaws.append(np.nan_to_num(b[:, 6].astype(np.float64)))
        kind = "outdoor" if any(np.abs(y).max() > 1e-6 for y in yaws) else "indoor"
    return Scene(
        name=name or "scene",
        coord=coord,
        color=d.get("color"),
        segment=d.get("segment"),
        pred=d.get("pred"),
        class_names=class_names,
        boxes_gt=d.get("boxes_gt"),
        labels_gt=d.get("labels_gt"),
        boxes_pred=d.get("boxes_pred"),
        scores_pred=d.get("scores_pred"),
        labels_pred=d.get("labels_pred"),
        box_class_names=box_names,
        kind=kind,
        source=source,
    )


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of a ``.npz`` file, read eagerly (no pickled objects).

    Raises:
        ValueError: naming the file, for a missing, empty, truncated or corrupt file or one that
            holds Python objects.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            head = f.read(4)
    except OSError as e:
        raise ValueError(f"{path}: cannot read ({e.strerror or e})") from None
    if not head:
        raise ValueError(f"{path}: not a readable .npz file: it is empty (0 bytes)")
    if head[:2] != b"PK":
        raise ValueError(
            f"{path}: not a readable .npz file: starts with {head!r}, expected a zip archive of .npy arrays"
        )
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except ValueError as e:
        raise ValueError(f"{path}: not a readable .npz file: {_first_line(e)}") from None
    except (OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error, UnicodeDecodeError) as e:
        raise ValueError(
            f"{path}: not a readable .npz file: truncated or corrupt ({_first_line(e)})"
        ) from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def load_npz(path: str | Path) -> Scene:
    """Load a prediction/scene ``.npz`` file (see :data:`NPZ_KEYS`)."""
    path = Path(path)
    return scene_from_dict(read_npz(path), name=path.stem, source=str(path))


def merge_predictions(scene: Scene, pred: Scene | Mapping[str, Any]) -> Scene:
    """Add the predictions of ``pred`` (a Scene or npz-format dict) to a ground-truth ``scene``.

    Point predictions must have one label per point of ``scene``.
    """
    if not isinstance(pred, Scene) and "pred" in pred:
        labels = np.asarray(pred["pred"]).reshape(-1)
        kept = scene.kept_points
        if kept is not None and labels.shape[0] == kept.shape[0]:  # labels of the input's points
            pred = {**pred, "pred": labels[kept]}
    n_pred = len(pred.pred) if isinstance(pred, Scene) and pred.pred is not None else None
    if not isinstance(pred, Scene) and "pred" in pred:
        n_pred = len(pred["pred"])
    if n_pred is not None and n_pred != scene.coord.shape[0]:
        src = (pred.source or pred.name) if isinstance(pred, Scene) else "predictions"
        raise ValueError(
            f"{src!r} have {n_pred} point labels but scene {scene.name!r} has {scene.coord.shape[0]} points"
        )
    if not isinstance(pred, Scene):
        pred = scene_from_dict({"coord": scene.coord, **{k: v for k, v in pred.items() if k != "coord"}})
    changes: dict[str, Any] = {}
    if pred.pred is not None:
        changes["pred"] = pred.pred
        if pred.class_names:
            changes["class_names"] = pred.class_names
    if pred.boxes_pred is not None:
        changes.update(boxes_pred=pred.boxes_pred, scores_pred=pred.scores_pred, labels_pred=pred.labels_pred)
        if pred.box_class_names:
            changes["box_class_names"] = pred.box_class_names
    return dataclasses.replace(scene, **changes)


# ----------------------------------------------------------------------------------------------- inputs


def load_preprocessed_scannet(path: str | Path) -> Scene:
    """A preprocessed ScanNet scene directory (``coord.npy``, ...), moved to the aligned frame."""
    path = Path(path)
    d = readers.read_preprocessed_scannet(path)
    coord = readers.apply_transform(d["coord"], d["axis_align"]) if "axis_align" in d else d["coord"]
    return Scene(
        name=path.name,
        coord=coord,
        color=d.get("color"),
        segment=d.get("segment20"),
        class_names=readers.scannet_classes()[0],
        boxes_gt=d.get("boxes"),
        labels_gt=d.get("box_labels"),
        box_class_names=readers.scannet_classes()[1],
        kind="indoor",
        source=str(path),
    )


def load_raw_scannet(path: str | Path) -> Scene:
    """A raw ScanNet scan (directory or ``*_vh_clean_2.ply``), in the aligned frame."""
    d = readers.read_raw_scannet(path)
    return Scene(
        name=d["scene_id"],
        coord=readers.apply_transform(d["coord"], d["axis_align"]),
        color=d["color"],
        segment=d.get("segment20"),
        class_names=readers.scannet_classes()[0],
        boxes_gt=d.get("boxes"),
        labels_gt=d.get("box_labels"),
        box_class_names=readers.scannet_classes()[1],
        kind="indoor",
        source=str(path),
    )


def load_kitti_frame(path: str | Path) -> Scene:
    """A raw KITTI frame from its ``velodyne/<id>.bin``; GT boxes (LiDAR frame) from ``label_2`` if present."""
    d = readers.read_kitti_frame(path)
    return Scene(
        name=d["frame_id"],
        coord=d["coord"],
        boxes_gt=d.get("boxes"),
        labels_gt=d.get("box_labels"),
        box_class_names=readers.KITTI_CLASSES,
        kind="outdoor",
        source=str(path),
    )


def input_kind(path: str | Path) -> str:
    """Classify an input path: ``'scannet_preprocessed'``, ``'scannet_raw'``, ``'kitti'``, ``'npz'``
    or ``'collection'`` (a directory of scenes / npz files).

    Raises:
        FileNotFoundError: the path does not exist.
        ValueError: the path is not one of the supported inputs.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"input not found: {p}")
    if p.is_file():
        if p.suffix == ".npz":
            return "npz"
        if p.suffix == ".bin":
            return "kitti"
        if p.name.endswith("_vh_clean_2.ply"):
            return "scannet_raw"
        raise ValueError(
            f"{p}: unsupported file type {p.suffix or '(no suffix)'}; expected a prediction .npz, a KITTI "
            "velodyne .bin or a ScanNet *_vh_clean_2.ply"
        )
    if (p / "coord.npy").is_file():
        return "scannet_preprocessed"
    if (p / f"{p.name}_vh_clean_2.ply").is_file():
        return "scannet_raw"
    if _collection_members(p):
        return "collection"
    raise ValueError(
        f"{p}: not a scene directory (no coord.npy, no <scene>_vh_clean_2.ply) and no scenes, .npz or .bin "
        "files inside"
    )


def _collection_members(p: Path) -> list[Path]:
    """Scenes inside folder ``p`` (or its ``scans/`` / ``training/velodyne/``), in name order."""
    for root in (p, p / "scans", p / "training" / "velodyne"):
        if not root.is_dir():
            continue
        found = sorted(root.glob("*.npz")) + sorted(root.glob("*.bin"))
        found += sorted(
            q
            for q in root.iterdir()
            if q.is_dir() and ((q / "coord.npy").is_file() or (q / f"{q.name}_vh_clean_2.ply").is_file())
        )
        if found:
            return found
    return []


def load_scene(path: str | Path) -> Scene:
    """Load one scene from any supported input (see module docstring)."""
    kind = input_kind(path)
    if kind == "npz":
        return load_npz(path)
    if kind == "kitti":
        return load_kitti_frame(path)
    if kind == "scannet_raw":
        return load_raw_scannet(path)
    if kind == "scannet_preprocessed":
        return load_preprocessed_scannet(path)
    raise ValueError(f"{path}: is a collection of scenes; use expand_inputs()/load_scenes()")


def expand_inputs(paths: Sequence[str | Path]) -> list[Path]:
    """Expand folders of scenes into scene paths: ``<out>`` or ``<out>/scans`` (preprocessed or raw
    ScanNet scans), ``<kitti>`` or ``<kitti>/training/velodyne`` (``.bin``), or a folder of ``.npz``."""
    out: list[Path] = []
    for path in paths:
        p = Path(path)
        out.extend(_collection_members(p) if input_kind(p) == "collection" else [p])
    return out


def load_scenes(paths: Sequence[str | Path]) -> list[Scene]:
    """Load every scene named by ``paths`` (directories of scenes are expanded)."""
    return [load_scene(p) for p in expand_inputs(paths)]
