"""ScanNet dataset over the preprocessed format (``<root>/scans/<scene>/``, ``<root>/splits/``).

Randomness: sample ``index`` in epoch ``epoch`` uses ``np.random.default_rng([seed, stage, epoch,
index])``, so a sample does not depend on the worker that loads it, the number of workers or
the order of loading; :class:`EpochSampler` hands ``(epoch, index)`` pairs to the dataset.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from pc3d.data.batch import PointBatch
from pc3d.data.scannet.classes import segment20_to_det_class
from pc3d.data.scannet.pipelines import (
    DetAugParams,
    SegAugParams,
    det_eval_pipeline,
    det_train_pipeline,
    seg_test_pre_pipeline,
    seg_test_views,
    seg_train_pipeline,
    seg_val_pipeline,
)
from pc3d.data.scannet.preprocess import align_points, load_scene
from pc3d.data.scannet.raw import read_split
from pc3d.data.transforms import CenterShift, GridSample

_STAGES = {"train": 0, "val": 1, "test": 2}


def resolve_scenes(root: str | Path, split: str | Sequence[str], max_scenes: int | None = None) -> list[str]:
    """Scene ids of ``split``: a split name (``<root>/splits/<name>.txt``), a path to a txt file,
    or an explicit list of scene ids. Checks that every scene exists under ``<root>/scans``."""
    root = Path(root)
    if isinstance(split, str):
        f = root / "splits" / f"{split}.txt"
        if not f.is_file():
            f = Path(split)
        if not f.is_file():
            raise ValueError(
                f"split: {split!r} is neither {root / 'splits' / (split + '.txt')} nor an existing file"
            )
        scenes = read_split(f)
    else:
        scenes = [str(s) for s in split]
    if max_scenes is not None:
        if max_scenes < 1:
            raise ValueError(f"max_scenes: must be >= 1, got {max_scenes}")
        scenes = scenes[:max_scenes]
    missing = [s for s in scenes if not (root / "scans" / s / "meta.json").is_file()]
    if missing:
        raise ValueError(
            f"split {split!r}: {len(missing)} scene(s) not preprocessed under {root / 'scans'} "
            f"(first: {missing[:3]}); run `pc3d-data scannet`"
        )
    return scenes


def seg_sample(
    data: dict[str, Any], meta: dict[str, Any], origin: dict[str, np.ndarray] | None = None
) -> dict[str, Any]:
    """A transformed segmentation scene as a :meth:`PointBatch.collate` sample: ``feat (n, 6)`` =
    colour (as normalised by the pipeline) then normal; ``point`` holds ``segment``, ``grid_coord``
    and, for test fragments, ``index``; ``origin`` (per original point, ``(r, ...)``) when given."""
    point = {"segment": data["segment"], "grid_coord": data["grid_coord"]}
    if "index" in data:
        point["index"] = data["index"]
    feat = np.concatenate([data["color"], data["normal"]], axis=1).astype(np.float32)
    sample = {"coord": data["coord"].astype(np.float32), "feat": feat, "point": point, "meta": meta}
    if origin is not None:
        sample["origin"] = origin
    return sample


def scene_origin(data: dict[str, Any]) -> dict[str, np.ndarray]:
    """The untouched scene for writing predictions: ``coord (N, 3)`` float32, ``color (N, 3)`` uint8,
    ``segment (N,)`` int64 of a raw scene dict."""
    return {
        "coord": np.asarray(data["coord"], np.float32),
        "color": np.asarray(data["color"]).astype(np.uint8),
        "segment": np.asarray(data["segment"], np.int64),
    }


def sample_rng(seed: int, stage: str, epoch: int, index: int) -> np.random.Generator:
    """The generator of sample ``index`` of ``stage`` in ``epoch`` (see the module docstring)."""
    return np.random.default_rng([int(seed), _STAGES[stage], int(epoch), int(index)])


def det_input_sample(data: dict[str, Any], use_color: bool, meta: dict[str, Any]) -> dict[str, Any]:
    """The model input of a transformed detection scene: ``coord (n, 3)`` float32 and ``feat (n, 1)``
    = ``height`` above the floor, or ``(n, 4)`` with ``color`` (0..255) mapped to [-1, 1] when
    ``use_color``; no targets, so it also serves scans without labels."""
    feats = [data["height"][:, None]]
    if use_color:
        feats.append(data["color"] / np.float32(127.5) - 1)
    return {
        "coord": data["coord"].astype(np.float32),
        "feat": np.concatenate(feats, axis=1).astype(np.float32),
        "meta": meta,
    }


class SegTestPipeline:
    """The segmentation test-time pipeline of one whole scene (see :class:`ScanNetDataModule`).

    Called on a raw scene dict (``coord (N, 3)``, ``color (N, 3)`` float32 0..255, ``normal (N, 3)``,
    ``segment (N,)`` int64, -1 when unknown) it applies :func:`seg_test_pre_pipeline`, each view of
    ``test_views``, GridSample test fragments of ``grid_size`` and a final CenterShift, and returns
    the fragment samples; ``meta`` of each gets ``fragment``, ``num_fragments``, ``view`` and
    ``num_points`` (N). The first fragment's ``origin`` is the untouched scene (:func:`scene_origin`),
    the others' ``origin`` arrays are empty.
    """

    def __init__(self, grid_size: float, test_views: str = "single"):
        self.grid_size = float(grid_size)
        self.pre = seg_test_pre_pipeline()
        self.views = seg_test_views(test_views)
        self.fragmenter = GridSample(self.grid_size, mode="test")
        self.post = CenterShift(apply_z=False)

    def __call__(
        self, data: dict[str, Any], rng: np.random.Generator, meta: dict[str, Any]
    ) -> list[dict[str, Any]]:
        n = data["coord"].shape[0]
        origin = scene_origin(data)
        empty = {k: v[:0] for k, v in origin.items()}
        data = self.pre(data, rng)
        frags = []
        for v, view in enumerate(self.views):
            for f in self.fragmenter.fragments(view({k: x for k, x in data.items()}, rng)):
                frags.append((v, f))
        out = []
        for i, (v, f) in enumerate(frags):
            m = {**meta, "fragment": i, "num_fragments": len(frags), "view": v, "num_points": n}
            out.append(seg_sample(self.post(f, rng), m, origin if i == 0 else empty))
        return out


class ScanNetDataset(Dataset):
    """One ScanNet split for segmentation (``task="seg"``) or detection (``task="det"``).

    ``stage="train"`` applies the training augmentation (new randomness every epoch);
    ``"val"``/``"test"`` are deterministic per scene. Items are sample dicts for
    :meth:`PointBatch.collate` (see :class:`ScanNetDataModule` for their exact content), except
    segmentation ``stage="test"``, whose item is the *list* of fragment samples of one scene.
    ``loop`` repeats the scene list (``len = loop * scenes``).
    """

    def __init__(
        self,
        root: str | Path,
        split: str | Sequence[str] = "train",
        task: str = "seg",
        stage: str = "train",
        seed: int = 0,
        loop: int = 1,
        max_scenes: int | None = None,
        segment_key: str = "segment20",
        seg_aug: SegAugParams | None = None,
        det_aug: DetAugParams | None = None,
        use_color_det: bool = False,
        test_views: str = "single",
    ):
        if task not in ("seg", "det"):
            raise ValueError(f"task: expected 'seg' or 'det', got {task!r}")
        if stage not in _STAGES:
            raise ValueError(f"stage: expected one of {list(_STAGES)}, got {stage!r}")
        if segment_key not in ("segment20", "segment200"):
            raise ValueError(f"segment_key: expected 'segment20' or 'segment200', got {segment_key!r}")
        if loop < 1:
            raise ValueError(f"loop: must be >= 1, got {loop}")
        self.root = Path(root)
        self.scenes = resolve_scenes(root, split, max_scenes)
        self.task, self.stage, self.seed, self.loop = task, stage, int(seed), int(loop)
        self.segment_key = segment_key
        self.seg_aug = seg_aug or SegAugParams()
        self.det_aug = det_aug or DetAugParams()
        self.use_color_det = use_color_det
        if task == "seg":
            if stage == "train":
                self.transform = seg_train_pipeline(self.seg_aug)
            elif stage == "val":
                self.transform = seg_val_pipeline(self.seg_aug.grid_size)
            else:
                self.test_pipeline = SegTestPipeline(self.seg_aug.grid_size, test_views)
        elif stage == "train":
            self.transform = det_train_pipeline(self.det_aug)
        else:
            self.transform = det_eval_pipeline(self.det_aug.num_points)

    def __len__(self) -> int:
        return len(self.scenes) * self.loop

    def rng(self, epoch: int, index: int) -> np.random.Generator:
        """The generator of sample ``index`` in ``epoch`` (eval stages ignore the epoch)."""
        return sample_rng(self.seed, self.stage, epoch if self.stage == "train" else 0, index)

    def load(self, index: int) -> dict[str, Any]:
        """The raw sample dict of scene ``index % len(scenes)`` before any transform."""
        scene = self.scenes[index % len(self.scenes)]
        path = self.root / "scans" / scene
        if self.task == "seg":
            s = load_scene(path, ("coord", "color", "normal", self.segment_key))
            return {
                "coord": s["coord"],
                "color": s["color"].astype(np.float32),
                "normal": s["normal"],
                "segment": s[self.segment_key].astype(np.int64),
                "scene_id": scene,
            }
        keys = ("coord", "segment20", "instance", "axis_align", "boxes", "box_labels")
        s = load_scene(path, keys + (("color",) if self.use_color_det else ()))
        data = {
            "coord": align_points(s["coord"], s["axis_align"]),
            "segment": s["segment20"].astype(np.int64),
            "det_class": segment20_to_det_class(s["segment20"]),
            "instance": s["instance"].astype(np.int64),
            "boxes": s["boxes"].astype(np.float32),
            "box_labels": s["box_labels"].astype(np.int64),
            "axis_align": s["axis_align"],
            "scene_id": scene,
        }
        if self.use_color_det:
            data["color"] = s["color"].astype(np.float32)
        return data

    def __getitem__(self, item: int | tuple[int, int]) -> Any:
        epoch, index = (0, item) if not isinstance(item, (tuple, list)) else (int(item[0]), int(item[1]))
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        rng = self.rng(epoch, index)
        data = self.load(index)
        meta = {"scene_id": data["scene_id"], "index": index, "epoch": epoch, "seed": self.seed}
        if self.task == "det":
            return self._det_sample(self.transform(data, rng), meta)
        if self.stage == "test":
            return self.test_pipeline(data, rng, meta)
        n = data["coord"].shape[0]
        origin_segment = data["segment"]
        data = self.transform(data, rng)
        if self.stage != "val":
            return seg_sample(data, meta)
        origin = {"inverse": data.pop("inverse"), "segment": origin_segment}
        return seg_sample(data, {**meta, "num_points": n}, origin)

    def _det_sample(self, data: dict[str, Any], meta: dict[str, Any]) -> dict[str, Any]:
        return {
            **det_input_sample(data, self.use_color_det, meta),
            "point": {
                "vote_target": data["vote_target"],
                "vote_mask": data["vote_mask"],
                "instance": data["instance"],
                "segment": data["segment"],
            },
            "boxes": data["boxes"],
            "box_labels": data["box_labels"],
            "cloud": {"axis_align": torch.from_numpy(np.asarray(data["axis_align"], np.float32))},
        }


class EpochSampler(Sampler):
    """Yields ``(epoch, index)`` pairs, shuffled with ``np.random.default_rng([seed, epoch])``.

    ``set_epoch`` (called by Lightning each epoch) fixes the epoch; without it the epoch advances
    by one per iteration. The pairs make sample randomness a function of (seed, epoch, index).
    """

    def __init__(self, num_samples: int, shuffle: bool = True, seed: int = 0):
        self.num_samples, self.shuffle, self.seed = int(num_samples), shuffle, int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        self.epoch += 1
        if self.shuffle:
            order = np.random.default_rng([self.seed, epoch]).permutation(self.num_samples)
        else:
            order = np.arange(self.num_samples)
        return iter([(epoch, int(i)) for i in order])


class SegCollate:
    """``PointBatch.collate`` plus Pointcept's Mix3D-style mixing for segmentation training.

    With probability ``mix_prob`` (drawn from the first sample's ``(seed, epoch, index)``),
    consecutive pairs of clouds are merged into one cloud (offsets ``[0, o2, o4, ..., N]``);
    the merged cloud's meta lists both scenes under ``"mixed"``.
    """

    def __init__(self, mix_prob: float = 0.0):
        if not 0.0 <= mix_prob <= 1.0:
            raise ValueError(f"mix_prob: expected [0, 1], got {mix_prob}")
        self.mix_prob = float(mix_prob)

    def __call__(self, samples: Sequence[dict[str, Any]]) -> PointBatch:
        batch = PointBatch.collate(samples)
        if self.mix_prob <= 0 or len(samples) < 2:
            return batch
        m = samples[0].get("meta", {})
        rng = np.random.default_rng(
            [int(m.get("seed", 0)), 7, int(m.get("epoch", 0)), int(m.get("index", 0))]
        )
        if rng.random() >= self.mix_prob:
            return batch
        o = batch.offsets
        keep = sorted(set(range(0, len(o), 2)) | {len(o) - 1})  # pair ends: [0, o2, o4, ..., N]
        batch.offsets = o[keep].contiguous()
        if batch.origin_offsets is not None:  # global indices stay valid when clouds merge
            batch.origin_offsets = batch.origin_offsets[keep].contiguous()
        metas = batch.meta
        batch.meta = [
            {**metas[i], "mixed": [mm["scene_id"] for mm in metas[i : i + 2]]}
            for i in range(0, len(metas), 2)
        ]
        batch.cloud = {}
        return batch


def collate_fragments(items: Sequence[list[dict[str, Any]]]) -> PointBatch:
    """Test collate: flatten the fragment lists of the scenes in ``items`` into one batch."""
    return PointBatch.collate([frag for frags in items for frag in frags])
