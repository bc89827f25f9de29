"""sequence_depthwise_conv: numba vs the torch reference vs a hand-written loop, gradients, bad input."""

from __future__ import annotations

import pytest
import torch

from pc3d.kernels import sequence_depthwise_conv
from pc3d.kernels.scan import scan_order, sequence_depthwise_conv_ref

CASES = [(k, reverse, stride) for k in (1, 3, 4) for reverse in (False, True) for stride in (1, 2, 3)]


def _loop_conv(
    x: torch.Tensor, w: torch.Tensor, offsets: list[int], reverse: bool, stride: int
) -> torch.Tensor:
    """Literal definition: walk each sequence in scan order, sum the taps that stay inside it."""
    out = torch.zeros_like(x)
    k = w.shape[1]
    left = (k - 1) // 2
    for a, e in zip(offsets[:-1], offsets[1:]):
        pi = (a + scan_order(e - a, stride, reverse)).tolist()
        for p, row in enumerate(pi):
            for j in range(k):
                q = p - left + j
                if 0 <= q < len(pi):
                    out[:, :, row] += w[:, j] * x[:, :, pi[q]]
    return out


@pytest.mark.parametrize(("k", "reverse", "stride"), CASES)
def test_matches_literal_definition(k, reverse, stride):
    g = torch.Generator().manual_seed(k * 10 + stride + 100 * reverse)
    offsets = [0, 1, 8, 8, 19]  # a length-1 sequence, an empty one, odd lengths
    x = torch.randn(1, 3, 19, generator=g, dtype=torch.float64)
    w = torch.randn(3, k, generator=g, dtype=torch.float64)
    expect = _loop_conv(x, w, offsets, reverse, stride)
    offs = torch.tensor(offsets)
    for backend in ("torch", "numba"):
        out = sequence_depthwise_conv(x, w, offs, reverse=reverse, stride=stride, backend=backend)
        torch.testing.assert_close(out, expect, rtol=1e-12, atol=1e-12, msg=backend)


@pytest.mark.parametrize(
    ("k", "reverse", "stride"), [(4, False, 1), (4, True, 2), (3, True, 8), (5, False, 3)]
)
def test_numba_gradients_match_reference_fp32(k, reverse, stride):
    g = torch.Generator().manual_seed(k + stride)
    offsets = torch.tensor([0, 37, 38, 200, 331])
    x = torch.randn(1, 24, 331, generator=g, requires_grad=True)
    w = torch.randn(24, k, generator=g, requires_grad=True)
    dout = torch.randn(1, 24, 331, generator=g)
    grads = []
    for backend in ("torch", "numba"):
        out = sequence_depthwise_conv(x, w, offsets, reverse=reverse, stride=stride, backend=backend)
        grads.append((out, *torch.autograd.grad(out, (x, w), dout)))
    for a, b in zip(*grads):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-4)


def test_batched_rows_without_offsets_and_gradcheck():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 11, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True)
    ref = sequence_depthwise_conv_ref(x, w, torch.tensor([0, 11]), True, 3)
    out = sequence_depthwise_conv(x, w, reverse=True, stride=3, backend="numba")
    torch.testing.assert_close(out, ref)
    assert torch.autograd.gradcheck(
        lambda a, b: sequence_depthwise_conv(a, b, torch.tensor([0, 4, 11]), reverse=True, stride=2),
        (x[:1], w),
    )


def test_reverse_is_the_flipped_conv():
    """Reversing a sequence and running the forward conv equals the reverse conv read backwards."""
    x = torch.randn(1, 2, 9)
    w = torch.randn(2, 4)
    rev = sequence_depthwise_conv(x, w, reverse=True)
    fwd_of_flipped = sequence_depthwise_conv(x.flip(-1), w).flip(-1)
    torch.testing.assert_close(rev, fwd_of_flipped)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"x": torch.randn(3, 4)}, "x must be"),
        ({"weight": torch.randn(3, 4)}, "weight must have shape"),
        ({"offsets": torch.tensor([0, 5, 3, 10])}, "offsets must be non-decreasing"),
        ({"offsets": torch.tensor([0.0, 10.0])}, "offsets must be a 1-D int"),
        ({"x": torch.randn(2, 2, 10), "offsets": torch.tensor([0, 10])}, "require b == 1"),
        ({"stride": 0}, "stride must be"),
        ({"backend": "cuda"}, "backend must be"),
    ],
)
def test_bad_input_names_the_argument(kwargs, match):
    args = {"x": torch.randn(1, 2, 10), "weight": torch.randn(2, 4), "offsets": None} | kwargs
    with pytest.raises(ValueError, match=match):
        sequence_depthwise_conv(
            args.pop("x"), args.pop("weight"), args.pop("offsets"), **{k: v for k, v in args.items()}
        )
