"""Serialization codes (z / Hilbert, transposed variants) vs bit-level references and curve properties."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from pc3d.kernels.points import ORDERS, serialization_order, serialize


def _z_ref(g: np.ndarray, depth: int) -> np.ndarray:
    out = []
    for x, y, z in g.tolist():
        c = 0
        for i in range(depth):
            c |= ((x >> i) & 1) << (3 * i + 2) | ((y >> i) & 1) << (3 * i + 1) | ((z >> i) & 1) << (3 * i)
        out.append(c)
    return np.array(out, dtype=np.int64)


def _hilbert_ref(g: np.ndarray, depth: int) -> np.ndarray:
    """Bit-array Skilling transform (numpy-hilbert-curve algorithm), one point at a time."""
    out = []
    for row in g.tolist():
        gray = [[(v >> (depth - 1 - k)) & 1 for k in range(depth)] for v in row]  # (3, depth) MSB first
        for bit in range(depth):
            for dim in range(3):
                if gray[dim][bit]:
                    for j in range(bit + 1, depth):
                        gray[0][j] ^= 1
                else:
                    for j in range(bit + 1, depth):
                        if gray[0][j] != gray[dim][j]:
                            gray[0][j] ^= 1
                            gray[dim][j] ^= 1
        flat = [gray[d][b] for b in range(depth) for d in range(3)]
        acc, code = 0, 0
        for f in flat:  # Gray -> binary: prefix xor from the MSB
            acc ^= f
            code = (code << 1) | acc
        out.append(code)
    return np.array(out, dtype=np.int64)


def _cube(depth: int) -> np.ndarray:
    r = range(1 << depth)
    return np.array(list(itertools.product(r, r, r)), dtype=np.int64)


@pytest.mark.parametrize("backend", ["numba", "torch"])
@pytest.mark.parametrize("depth", [1, 3, 16])
def test_codes_match_reference(backend, depth):
    rng = np.random.default_rng(depth)
    g = rng.integers(0, 1 << depth, size=(200, 3))
    g[:3] = [[0, 0, 0], [(1 << depth) - 1] * 3, [0, (1 << depth) - 1, 0]]
    batch = rng.integers(0, 5, size=200)
    gt, bt = torch.from_numpy(g), torch.from_numpy(batch)
    refs = {
        "z": _z_ref(g, depth),
        "z-trans": _z_ref(g[:, [1, 0, 2]], depth),
        "hilbert": _hilbert_ref(g, depth),
        "hilbert-trans": _hilbert_ref(g[:, [1, 0, 2]], depth),
    }
    for order in ORDERS:
        code = serialize(gt, bt, order, depth, backend=backend)
        assert code.dtype == torch.int64
        expect = (batch << (3 * depth)) | refs[order]
        np.testing.assert_array_equal(code.numpy(), expect, err_msg=order)
        np.testing.assert_array_equal(code.numpy() >> (3 * depth), batch)


def test_known_z_values():
    g = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 1], [3, 0, 0]])
    assert serialize(g, None, "z", 2).tolist() == [4, 2, 1, 4 + 32]
    assert serialize(g, None, "z-trans", 2).tolist() == [2, 4, 1, 2 + 16]


@pytest.mark.parametrize("depth", [1, 2, 4])
@pytest.mark.parametrize("order", ORDERS)
def test_bijection_on_cells(order, depth):
    cells = _cube(depth)
    n = len(cells)
    batch = np.repeat(np.arange(3), n)
    code = serialize(np.tile(cells, (3, 1)), batch, order, depth)
    assert isinstance(code, np.ndarray)
    assert len(np.unique(code)) == 3 * n
    spatial = code & ((1 << (3 * depth)) - 1)
    np.testing.assert_array_equal(np.sort(spatial[:n]), np.arange(n))


@pytest.mark.parametrize("depth", [1, 2, 3, 5])
@pytest.mark.parametrize("order", ["hilbert", "hilbert-trans"])
def test_hilbert_neighbours_are_grid_neighbours(order, depth):
    cells = _cube(depth)
    code = serialize(torch.from_numpy(cells), None, order, depth).numpy()
    walk = cells[np.argsort(code)]
    step = np.abs(np.diff(walk, axis=0)).sum(1)
    assert (step == 1).all()
    np.testing.assert_array_equal(walk[0], [0, 0, 0])


def test_z_order_is_not_continuous():
    # the property above must fail for z-order: guards against the test being vacuous
    cells = _cube(2)
    walk = cells[np.argsort(serialize(cells, None, "z", 2))]
    assert (np.abs(np.diff(walk, axis=0)).sum(1) > 1).any()


def test_serialization_order_and_inverse():
    code = torch.tensor([5, 3, 3, 9, 0, 3], dtype=torch.int64)
    order, inverse = serialization_order(code)
    assert order.tolist() == [4, 1, 2, 5, 0, 3]  # stable on ties
    assert torch.equal(order[inverse], torch.arange(6))
    big = torch.from_numpy(np.random.default_rng(0).integers(0, 2**60, 5000))
    o, inv = serialization_order(big)
    assert torch.equal(o, torch.sort(big, stable=True).indices)
    assert torch.equal(inv[o], torch.arange(5000))
    neg = torch.tensor([3, -1, 2])
    assert serialization_order(neg)[0].tolist() == [1, 2, 0]
    o_np, inv_np = serialization_order(code.numpy())
    assert isinstance(o_np, np.ndarray) and o_np.tolist() == order.tolist()


def test_serialize_bad_input():
    g = torch.zeros(4, 3, dtype=torch.int64)
    with pytest.raises(ValueError, match="grid_coord"):
        serialize(torch.zeros(4, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match="grid_coord"):
        serialize(g.float())
    with pytest.raises(ValueError, match="grid_coord"):
        serialize(torch.tensor([[0, 0, 4]]), depth=2)
    with pytest.raises(ValueError, match="grid_coord"):
        serialize(torch.tensor([[0, -1, 0]]))
    with pytest.raises(ValueError, match="depth"):
        serialize(g, depth=17)
    with pytest.raises(ValueError, match="order"):
        serialize(g, order="peano")
    with pytest.raises(ValueError, match="batch"):
        serialize(g, torch.zeros(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="batch"):
        serialize(g, torch.full((4,), 1 << 20), depth=16)
    with pytest.raises(ValueError, match="batch"):
        serialize(g, torch.tensor([0, -1, 0, 0]))
