"""Small labelled crops of the real scene0000_00 for overfit tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pc3d.data.batch import PointBatch


def scene0000_crop(samples_dir: Path, half: float = 1.5, grid: float = 0.05) -> PointBatch:
    """The ``2 half`` x ``2 half`` m column around the scene's median xy, one point per ``grid`` voxel,
    as a one-cloud batch with colour+normal features and ``point["segment"]`` (ScanNet20, -1 ignored)."""
    from pc3d.data.scannet.preprocess import convert_scene
    from pc3d.data.scannet.raw import read_label_tsv

    root = samples_dir / "scannet"
    labels = read_label_tsv(root / "meta" / "scannetv2-labels.combined.tsv")
    d = convert_scene(root / "scans" / "scene0000_00", labels)["arrays"]
    c = d["coord"]
    m = (np.abs(c[:, :2] - np.median(c[:, :2], 0)) < half).all(1)
    c, color, normal, seg = c[m], d["color"][m], d["normal"][m], d["segment20"][m].astype(np.int64)
    _, keep = np.unique(np.floor(c / grid).astype(np.int64), axis=0, return_index=True)  # one point per voxel
    feat = np.concatenate([color[keep] / 127.5 - 1, normal[keep]], 1).astype(np.float32)
    coord = (c[keep] - c[keep].mean(0)).astype(np.float32)
    return PointBatch.collate([{"coord": coord, "feat": feat, "point": {"segment": seg[keep]}}])


def overfit_crop(model, batch: PointBatch, steps: int = 60, lr: float = 0.01, target: float = 0.9) -> float:
    """Best labelled-point accuracy of ``model`` (in a ``SegmentationModule``, AdamW at ``lr``) trained on
    ``batch`` alone for at most ``steps`` steps, stopping once it reaches ``target``."""
    import torch

    from pc3d.tasks.segmentation import SegmentationModule

    labels = batch.point["segment"]
    labelled = labels >= 0
    task = SegmentationModule(model).train()
    opt = torch.optim.AdamW(task.parameters(), lr=lr, weight_decay=0.0)
    best = 0.0
    for _ in range(steps):
        logits = task(batch)
        loss = model.loss(logits, batch)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        best = max(best, float((logits.argmax(1)[labelled] == labels[labelled]).float().mean()))
        if best >= target:
            break
    return best
