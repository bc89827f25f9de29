"""PointBatch.collate: indices into boxes become global, like every kernel's indices."""

from __future__ import annotations

import numpy as np
import torch

from pc3d.data.batch import PointBatch


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
