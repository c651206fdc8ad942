"""Effective rank (Roy & Vetterli) against hand-computed values."""

import math

import pytest
import torch

from contrastkit.diagnostics.rank import effective_rank, singular_value_entropy


def test_identical_vectors_have_effective_rank_one():
    assert effective_rank(torch.full((6, 5), 0.3)) == pytest.approx(1.0, abs=1e-9)


def test_orthonormal_basis_uses_every_dimension():
    q, _ = torch.linalg.qr(torch.randn(8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    assert effective_rank(q) == pytest.approx(8.0)
    assert effective_rank(torch.eye(3) * 7) == pytest.approx(3.0)


def test_unequal_singular_values_by_hand():
    x = torch.diag(torch.tensor([3.0, 1.0, 0.0]))  # p = (0.75, 0.25, 0)
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert singular_value_entropy(x) == pytest.approx(h)
    assert effective_rank(x) == pytest.approx(math.exp(h))
    assert effective_rank(10 * x) == pytest.approx(math.exp(h))  # scale-free


def test_center_and_errors():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]]) + 5  # [[6, 5], [5, 6]]: singular values 11 and 1
    p = (11 / 12, 1 / 12)
    assert effective_rank(x) == pytest.approx(math.exp(-sum(q * math.log(q) for q in p)))
    assert effective_rank(x, center=True) == pytest.approx(1.0)  # the two centred points are +-(a direction)
    with pytest.raises(ValueError):
        effective_rank(torch.zeros(3, 2))
    with pytest.raises(ValueError):
        effective_rank(torch.ones(4, 2), center=True)
