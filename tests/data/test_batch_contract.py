"""PointBatch.collate: indices into boxes and into the points become global, like every kernel's indices;
the original points of voxelized clouds are packed by ``origin_offsets``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pc3d.data.batch import PointBatch
from pc3d.data.scannet.dataset import SegCollate


def _sample(n: int, boxes: int, box_index: list[int]) -> dict:
    return {
        "coord": np.zeros((n, 3), np.float32),
        "feat": np.zeros((n, 1), np.float32),
        "boxes": np.zeros((boxes, 7), np.float32),
        "box_labels": np.zeros(boxes, np.int64),
        "point": {"box_index": np.asarray(box_index, np.int64)},
    }


def test_collate_makes_box_index_an_index_into_the_batch_boxes():
    batch = PointBatch.collate([_sample(3, 2, [-1, 0, 1]), _sample(2, 3, [2, -1]), _sample(1, 0, [-1])])
    assert batch.box_offsets.tolist() == [0, 2, 5, 5]
    assert batch.point["box_index"].tolist() == [-1, 0, 1, 4, -1, -1]
    # every global index names a box of the point's own cloud
    inside = batch.point["box_index"] >= 0
    box_cloud = torch.repeat_interleave(torch.arange(3), torch.tensor([2, 3, 0]))
    assert torch.equal(box_cloud[batch.point["box_index"][inside]], batch.batch_index[inside])


def _voxelized(n: int, inverse: list[int], seed: int) -> dict:
    """A cloud of ``n`` voxels whose original points ``len(inverse)`` map to rows ``inverse``."""
    g = np.random.default_rng(seed)
    r = len(inverse)
    return {
        "coord": g.random((n, 3), np.float32),
        "feat": np.zeros((n, 1), np.float32),
        "origin": {
            "inverse": np.asarray(inverse, np.int64),
            "segment": g.integers(-1, 5, r),
            "coord": g.random((r, 3), np.float32),
        },
        "meta": {"scene_id": f"s{seed}", "seed": 0, "epoch": 0, "index": seed},
    }


def test_collate_packs_origin_and_makes_inverse_a_row_of_the_batch():
    samples = [_voxelized(3, [0, 2, 1, 2], 0), _voxelized(2, [1, 0, 0], 1), _voxelized(1, [], 2)]
    batch = PointBatch.collate(samples)
    assert batch.origin_offsets.tolist() == [0, 4, 7, 7]
    assert batch.origin["inverse"].tolist() == [0, 2, 1, 2, 4, 3, 3]
    for i, s in enumerate(samples):  # per cloud, the split gives back each sample's own arrays
        torch.testing.assert_close(
            batch.split_origin(batch.origin["coord"])[i], torch.from_numpy(s["origin"]["coord"])
        )
    # every original point maps to a row of its own cloud
    origin_cloud = torch.repeat_interleave(torch.arange(3), torch.tensor([4, 3, 0]))
    assert torch.equal(batch.batch_index[batch.origin["inverse"]], origin_cloud)
    moved = batch.to("cpu")
    assert moved.origin_offsets is not None and set(moved.origin) == {"inverse", "segment", "coord"}


def test_collate_refuses_mismatched_origin():
    a, b = _voxelized(3, [0, 1], 0), _voxelized(2, [1], 1)
    del b["origin"]["coord"]
    with pytest.raises(ValueError, match="origin"):
        PointBatch.collate([a, b])
    b = _voxelized(2, [1], 1)
    b["origin"]["segment"] = b["origin"]["segment"][:0]
    with pytest.raises(ValueError, match="rows per sample"):
        PointBatch.collate([_voxelized(3, [0, 1], 0), b])


def test_mixing_clouds_keeps_origin_rows_with_their_points():
    samples = [_voxelized(3, [0, 2, 1], 0), _voxelized(2, [1, 0], 1), _voxelized(2, [0, 1, 1], 2)]
    batch = SegCollate(mix_prob=1.0)(samples)
    assert batch.offsets.tolist() == [0, 5, 7] and batch.origin_offsets.tolist() == [0, 5, 8]
    origin_cloud = torch.repeat_interleave(torch.arange(2), torch.tensor([5, 3]))
    assert torch.equal(batch.batch_index[batch.origin["inverse"]], origin_cloud)
