"""Lovász-Softmax against its definition as the Lovász extension of the Jaccard set loss."""

from __future__ import annotations

import itertools

import pytest
import torch

from pc3d.models.losses import LovaszLoss, lovasz_softmax


def _jaccard_set_loss(mispredicted: set[int], fg: set[int]) -> float:
    """Berman et al.: Δ_J(M) = |M| / |fg ∪ M| (0 for the empty set)."""
    if not mispredicted:
        return 0.0
    return len(mispredicted) / len(fg | mispredicted)


def _lovasz_extension(errors: list[float], fg: set[int]) -> float:
    """f(m) = ∫_0^∞ Δ({i : m_i >= t}) dt, evaluated exactly on the piecewise-constant integrand."""
    levels = sorted(set(errors) | {0.0}, reverse=True)
    total = 0.0
    for hi, lo in itertools.pairwise(levels):
        total += (hi - lo) * _jaccard_set_loss({i for i, m in enumerate(errors) if m >= hi}, fg)
    return total


def _brute_force(probs: torch.Tensor, target: torch.Tensor, ignore: int = -1) -> float:
    keep = target != ignore
    probs, target = probs[keep], target[keep]
    losses = []
    for c in range(probs.shape[1]):
        fg = {i for i in range(len(target)) if target[i] == c}
        if not fg:
            continue
        errors = [abs(float(i in fg) - float(probs[i, c])) for i in range(len(target))]
        losses.append(_lovasz_extension(errors, fg))
    return sum(losses) / len(losses)


@pytest.mark.parametrize("seed", range(5))
def test_lovasz_matches_lovasz_extension_brute_force(seed):
    g = torch.Generator().manual_seed(seed)
    probs = torch.randn(9, 4, generator=g, dtype=torch.float64).softmax(-1)
    target = torch.randint(-1, 3, (9,), generator=g)  # class 3 absent, some ignored
    target[0] = 0
    assert float(lovasz_softmax(probs, target)) == pytest.approx(_brute_force(probs, target), abs=1e-12)


def test_lovasz_equals_jaccard_loss_on_hard_predictions():
    target = torch.tensor([0, 0, 1, 1, 1, 2, -1])
    pred = torch.tensor([0, 1, 1, 1, 2, 2, 0])
    probs = torch.nn.functional.one_hot(pred, 3).double()
    # IoU: class 0 = 1/2, class 1 = 2/4, class 2 = 1/2
    assert float(lovasz_softmax(probs, target)) == pytest.approx(1 - (1 / 2 + 2 / 4 + 1 / 2) / 3)


def test_lovasz_loss_module_gradients_and_ignore():
    logits = torch.randn(20, 5, requires_grad=True)
    target = torch.randint(0, 5, (20,))
    target[:4] = -1
    loss = LovaszLoss()(logits, target)
    loss.backward()
    assert torch.isfinite(logits.grad).all() and logits.grad[4:].abs().sum() > 0
    assert logits.grad[:4].abs().sum() == 0
    assert float(LovaszLoss()(logits, torch.full((20,), -1)).detach()) == 0.0
