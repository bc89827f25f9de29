"""KITTI object preprocessing: FOV-reduced clouds, JSON info files and the GT database.

Output layout under ``out`` (documented in docs/data/kitti.md)::

    training/points/<id>.npy       (N, 4) float32 FOV points x, y, z, reflectance (LiDAR frame)
    training/frames/<id>.json      per-frame info (calib, image size, annos, LiDAR boxes, difficulty, ...)
    training/gt_objects/<id>.npy   (P, 4) float32 points of the frame's objects, box-centred, concatenated
    testing/points/<id>.npy, testing/frames/<id>.json
    infos/kitti_infos_<split>.json {"version": 1, "split": ..., "frames": [info, ...]}
    gt_database/<Class>.npy        (P, 4) float32 object points of the train split, box-centred
    gt_database/dbinfos_train.json {"version": 1, "classes": {Class: [entry, ...]}}
    splits/<split>.txt             frame ids of each split used
    errors.json                    {"<split_dir>/<id>": "message"} of frames that failed

Every file is written atomically. A frame's info records the size and SHA-256 of its ``.npy``
files; a rerun skips a frame only when they still match, and redoes frames whose last
(re)conversion failed or was interrupted (``.pc3d-pending.json``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pc3d.data.kitti.augment import NAME_DTYPE, points_in_boxes_mask
from pc3d.data.kitti.calib import Calibration, fov_mask
from pc3d.data.kitti.io import DEFAULT_IMAGE_SIZE, read_image_size, read_json, read_text, read_velodyne
from pc3d.data.kitti.labels import anno_to_lidar_boxes, difficulty_level, read_label
from pc3d.io import (
    PendingJournal,
    bytes_record,
    check_output_dir,
    clean_leftovers,
    npy_bytes,
    run_items,
    verify_files,
    write_bytes,
    write_json,
    write_text,
)

INFO_VERSION = 1


@dataclass(frozen=True)
class FrameJob:
    root: str
    out: str
    split_dir: str  # "training" or "testing"
    frame_id: str
    overwrite: bool = False


def frame_info_path(out: str | Path, split_dir: str, frame_id: str) -> Path:
    return Path(out) / split_dir / "frames" / f"{frame_id}.json"


def _finished_info(out: Path, info_path: Path) -> dict | None:
    """The existing info of a frame when it and every file it records are intact, else ``None``."""
    try:
        info = read_json(info_path)
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or info.get("version") != INFO_VERSION:
        return None
    return info if verify_files(out, info.get("files")) is None and info.get("files") else None


def _save(out: Path, rel: str, arr: np.ndarray, records: dict) -> None:
    data = npy_bytes(arr)
    write_bytes(out / rel, data)
    records[rel] = bytes_record(data)


def process_frame(job: FrameJob) -> dict[str, Any]:
    """Preprocess one frame; writes its points/objects/info atomically and returns the info dict.

    Without ``overwrite``, an existing info whose recorded files are intact is returned as is.
    Raises ``ValueError`` naming the offending file on bad input, including an empty cloud or one
    with no point in the camera's field of view.
    """
    out = Path(job.out)
    info_path = frame_info_path(out, job.split_dir, job.frame_id)
    if not job.overwrite and info_path.exists():
        info = _finished_info(out, info_path)
        if info is not None:
            return info
    src = Path(job.root) / job.split_dir
    fid = job.frame_id
    calib = Calibration.from_file(src / "calib" / f"{fid}.txt")
    pts = read_velodyne(src / "velodyne" / f"{fid}.bin")
    img = src / "image_2" / f"{fid}.png"
    if img.exists():
        image_size, size_src = read_image_size(img), "image_2"
    else:
        image_size, size_src = DEFAULT_IMAGE_SIZE, "default"
    label_path = src / "label_2" / f"{fid}.txt"
    has_labels = job.split_dir == "training"
    anno = read_label(label_path, allow_score=False) if has_labels else None

    fov = fov_mask(calib, pts[:, :3], image_size)
    pts_fov = pts[fov]
    if len(pts_fov) == 0:
        raise ValueError(
            f"{src / 'velodyne' / f'{fid}.bin'}: none of its {len(pts)} points projects into image_2 "
            f"({image_size[0]}x{image_size[1]}) with {src / 'calib' / f'{fid}.txt'}"
        )
    records: dict[str, dict] = {}
    points_rel = f"{job.split_dir}/points/{fid}.npy"
    _save(out, points_rel, pts_fov, records)
    info: dict[str, Any] = {
        "version": INFO_VERSION,
        "frame_id": fid,
        "split_dir": job.split_dir,
        "image_size": list(image_size),
        "image_size_source": size_src,
        "calib": calib.to_dict(),
        "num_points_raw": int(len(pts)),
        "num_points": int(len(pts_fov)),
        "points_path": points_rel,
        "annos": None,
        "gt_objects": None,
    }
    if anno is not None:
        boxes = anno_to_lidar_boxes(anno, calib)
        obj = anno["name"] != "DontCare"
        obj_idx = np.flatnonzero(obj)
        mask = points_in_boxes_mask(pts, boxes[obj_idx])  # (N_raw, K) on the full cloud
        n_in = np.full(len(boxes), -1, dtype=np.int64)
        n_in[obj_idx] = mask[fov].sum(0)  # points per box counted on the FOV cloud (OpenPCDet)
        annos = {k: v.tolist() for k, v in anno.items()}
        annos["difficulty"] = difficulty_level(anno).tolist()
        annos["num_points_in_gt"] = n_in.tolist()
        annos["gt_boxes_lidar"] = boxes.tolist()
        info["annos"] = annos
        # GT database source: points of every non-DontCare object in the full cloud, box-centred.
        chunks, counts = [], []
        for k, i in enumerate(obj_idx):
            p = pts[mask[:, k]].copy()
            p[:, :3] -= boxes[i, :3].astype(np.float32)
            chunks.append(p)
            counts.append(len(p))
        obj_rel = f"{job.split_dir}/gt_objects/{fid}.npy"
        _save(out, obj_rel, np.concatenate(chunks) if chunks else np.zeros((0, 4), np.float32), records)
        info["gt_objects"] = {"path": obj_rel, "index": obj_idx.tolist(), "counts": counts}
    info["files"] = records
    write_json(info_path, info)
    return info


def _list_ids(d: Path) -> list[str]:
    return sorted(p.stem for p in d.glob("*.bin")) if d.is_dir() else []


def read_split(path: str | Path) -> list[str]:
    """Frame ids (zero-padded to 6 digits) of a split file with one id per line (UTF-8, BOM allowed).

    Raises ``ValueError`` naming the file when it is missing or not UTF-8, and file:line for an id
    that is not digits.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: split file not found")
    ids = []
    for lineno, line in enumerate(read_text(path, "split").splitlines(), start=1):
        s = line.strip()
        if not s:
            continue
        if not (s.isascii() and s.isdigit()):
            raise ValueError(f"{path}:{lineno}: expected a frame id of digits, got {s[:40]!r}")
        ids.append(s.zfill(6))
    return ids


def resolve_splits(root: str | Path) -> tuple[dict[str, list[str]], str]:
    """Frame ids of train/val/test and where they came from.

    Uses ``<root>/ImageSets/{train,val,test}.txt`` when present (the standard 3712/3769/7518 split).
    Otherwise the documented default: sorted ``training/velodyne`` ids alternate train (even
    positions) and val (odd positions); test is every ``testing/velodyne`` id.
    """
    root = Path(root)
    sets = root / "ImageSets"
    splits: dict[str, list[str]] = {}
    if (sets / "train.txt").exists() and (sets / "val.txt").exists():
        splits["train"] = read_split(sets / "train.txt")
        splits["val"] = read_split(sets / "val.txt")
        splits["test"] = (
            read_split(sets / "test.txt")
            if (sets / "test.txt").exists()
            else _list_ids(root / "testing" / "velodyne")
        )
        return splits, "ImageSets"
    train_ids = _list_ids(root / "training" / "velodyne")
    splits["train"] = train_ids[0::2]
    splits["val"] = train_ids[1::2]
    splits["test"] = _list_ids(root / "testing" / "velodyne")
    return splits, "default (alternating training ids; no ImageSets found)"


def preprocess(
    root: str | Path,
    out: str | Path,
    workers: int = 0,
    overwrite: bool = False,
    progress: bool = True,
    splits: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """Preprocess a KITTI object directory; returns ``{"frames", "errors", "splits", "split_source"}``.

    Frames failing with bad input, or whose worker process dies, are reported in ``errors`` (and
    ``<out>/errors.json``) and left out of the infos; the others continue. ``workers`` > 0 uses a
    process pool. ``ValueError`` (a :class:`pc3d.io.UsageError` for arguments) when nothing can run,
    e.g. an ``out`` that overlaps ``root``.
    """
    root, out = Path(root), Path(out)
    if workers < 0:
        raise ValueError(f"--workers must be >= 0 (0: in-process), got {workers}")
    if not (root / "training").is_dir() and not (root / "testing").is_dir():
        raise ValueError(f"--root {root}: expected a KITTI object directory with training/ and/or testing/")
    check_output_dir(out, {"--root": root})
    if splits is None:
        splits, source = resolve_splits(root)
    else:
        source = "given"
    train_like = list(dict.fromkeys(splits.get("train", []) + splits.get("val", [])))
    keys = [("training", f) for f in train_like] + [("testing", f) for f in splits.get("test", [])]
    if not keys:
        raise ValueError(
            f"--root {root}: no frames found (no .bin files in training/velodyne or testing/velodyne, "
            f"and no ids in the splits from {source})"
        )
    out.mkdir(parents=True, exist_ok=True)
    for folder in _output_folders(out):
        clean_leftovers(folder)
    journal = PendingJournal(out, "pc3d-data kitti")
    pending = journal.load()
    if overwrite:
        pending |= {f"{d}/{f}" for d, f in keys}
    journal.save(pending)
    items = []
    for d, f in keys:
        name = f"{d}/{f}"
        items.append((name, (FrameJob(str(root), str(out), d, f, overwrite or name in pending),)))
    infos: dict[tuple[str, str], dict] = {}
    errors: dict[str, str] = {}
    from tqdm import tqdm

    bar = tqdm(total=len(items), desc="kitti", unit="frame", disable=not progress)
    try:
        for r in run_items(process_frame, items, workers, preload=["pc3d.data.kitti.preprocess"]):
            bar.update()
            if r.ok:
                d, f = r.name.split("/")
                infos[(d, f)] = r.value
                pending.discard(r.name)
            else:
                errors[r.name] = r.error
    finally:
        bar.close()
        journal.save(pending)
    for name, ids in splits.items():
        write_text(out / "splits" / f"{name}.txt", "".join(f"{i}\n" for i in ids))
        d = "testing" if name == "test" else "training"
        frames = [infos[(d, i)] for i in ids if (d, i) in infos]
        write_json(
            out / "infos" / f"kitti_infos_{name}.json",
            {"version": INFO_VERSION, "split": name, "frames": frames},
        )
    if "train" in splits and "val" in splits:
        tv = [infos[("training", i)] for i in train_like if ("training", i) in infos]
        write_json(
            out / "infos" / "kitti_infos_trainval.json",
            {"version": INFO_VERSION, "split": "trainval", "frames": tv},
        )
    train_infos = [infos[("training", i)] for i in splits.get("train", []) if ("training", i) in infos]
    build_gt_database(out, train_infos)
    write_json(out / "errors.json", dict(sorted(errors.items())))
    return {
        "frames": len(infos),
        "errors": errors,
        "splits": {k: len(v) for k, v in splits.items()},
        "split_source": source,
    }


def _output_folders(out: Path) -> list[Path]:
    """Every folder :func:`preprocess` writes files into."""
    folders = [out, out / "splits", out / "infos", out / "gt_database"]
    for d in ("training", "testing"):
        folders += [out / d / sub for sub in ("points", "frames", "gt_objects")]
    return folders


def build_gt_database(out: str | Path, train_infos: list[dict]) -> dict[str, int]:
    """Concatenate the train frames' object points per class into ``gt_database/<Class>.npy``.

    Writes ``gt_database/dbinfos_train.json``: per class a list of entries ``{frame_id, gt_idx,
    name, box3d_lidar [7], num_points_in_gt, difficulty, bbox [4], score, offset, count}`` where
    rows ``offset:offset+count`` of ``<Class>.npy`` are the object's box-centred points.
    Returns the number of objects per class.
    """
    out = Path(out)
    per_cls_pts: dict[str, list[np.ndarray]] = {}
    per_cls_entries: dict[str, list[dict]] = {}
    offsets: dict[str, int] = {}
    for info in train_infos:
        go, an = info.get("gt_objects"), info.get("annos")
        if not go or not an:
            continue
        pts = np.load(out / go["path"], allow_pickle=False)
        start = 0
        for i, cnt in zip(go["index"], go["counts"]):
            name = an["name"][i]
            p = pts[start : start + cnt]
            start += cnt
            off = offsets.get(name, 0)
            per_cls_pts.setdefault(name, []).append(p)
            per_cls_entries.setdefault(name, []).append(
                {
                    "frame_id": info["frame_id"],
                    "gt_idx": int(i),
                    "name": name,
                    "box3d_lidar": an["gt_boxes_lidar"][i],
                    "num_points_in_gt": int(cnt),
                    "difficulty": an["difficulty"][i],
                    "bbox": an["bbox"][i],
                    "score": -1.0,
                    "offset": off,
                    "count": int(cnt),
                }
            )
            offsets[name] = off + int(cnt)
    db = out / "gt_database"
    for name, chunks in per_cls_pts.items():
        write_bytes(db / f"{name}.npy", npy_bytes(np.concatenate(chunks).astype(np.float32)))
    write_json(db / "dbinfos_train.json", {"version": INFO_VERSION, "classes": per_cls_entries})
    return {k: len(v) for k, v in per_cls_entries.items()}


def load_infos(out: str | Path, split: str) -> list[dict]:
    """Frame infos of ``split`` from ``<out>/infos/kitti_infos_<split>.json``."""
    path = Path(out) / "infos" / f"kitti_infos_{split}.json"
    if not path.exists():
        raise ValueError(f"{path}: no info file for split {split!r}; run `pc3d-data kitti` first")
    d = read_json(path)
    if d.get("version") != INFO_VERSION:
        raise ValueError(
            f"{path}: info version {d.get('version')}, expected {INFO_VERSION}; re-run preprocessing"
        )
    return d["frames"]


def load_frame(out: str | Path, info: dict) -> dict[str, np.ndarray]:
    """Arrays of one preprocessed frame: ``points (N, 4)``, and for labelled frames ``gt_boxes (K, 7)``
    LiDAR boxes, ``gt_names (K,)``, ``difficulty (K,)``, ``num_points_in_gt (K,)`` (DontCare removed)."""
    d: dict[str, np.ndarray] = {"points": np.load(Path(out) / info["points_path"], allow_pickle=False)}
    an = info.get("annos")
    if an:
        names = np.asarray(an["name"], dtype=NAME_DTYPE)  # also for frames without labels (empty list)
        keep = names != "DontCare"
        d["gt_boxes"] = np.asarray(an["gt_boxes_lidar"], np.float64).reshape(-1, 7)[keep]
        d["gt_names"] = names[keep]
        d["difficulty"] = np.asarray(an["difficulty"], np.int64)[keep]
        d["num_points_in_gt"] = np.asarray(an["num_points_in_gt"], np.int64)[keep]
    return d
