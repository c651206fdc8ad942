"""k-occurrence and hubness: a planted hub, a symmetric set, and a loop oracle."""

import math

import pytest
import torch

from contrastkit.diagnostics.hubness import hubness, k_occurrence, skewness


def _oracle(x, k):
    rows = x.tolist()
    n = len(rows)

    def cos(u, v):
        return sum(a * b for a, b in zip(u, v)) / math.sqrt(sum(a * a for a in u) * sum(b * b for b in v))

    counts = [0] * n
    for i in range(n):
        others = sorted((j for j in range(n) if j != i), key=lambda j: (-cos(rows[i], rows[j]), j))
        for j in others[:k]:
            counts[j] += 1
    return counts


def _skew(values):
    n = len(values)
    mu = sum(values) / n
    m2 = sum((v - mu) ** 2 for v in values) / n
    m3 = sum((v - mu) ** 3 for v in values) / n
    return m3 / m2**1.5


def test_planted_hub():
    m = 6
    x = torch.cat([torch.eye(m), torch.ones(1, m)])  # the last point is everyone's nearest neighbour
    counts = k_occurrence(x, k=1)
    assert counts.tolist() == [1, 0, 0, 0, 0, 0, m]  # the hub's own neighbour: tie, lowest index
    h = hubness(x, k=1)
    assert h.skewness == pytest.approx(_skew([1, 0, 0, 0, 0, 0, m]))
    assert h.max_occurrence == m and h.hub_share == pytest.approx(1 / 7) and h.antihub_share == pytest.approx(5 / 7)
    assert h.skewness > 1.5


def test_regular_polygon_has_no_hubs():
    angles = torch.arange(8, dtype=torch.float64) * 2 * math.pi / 8
    x = torch.stack([angles.cos(), angles.sin()], dim=1)
    assert k_occurrence(x, k=2).tolist() == [2] * 8
    assert hubness(x, k=2).skewness == 0.0


def test_k_occurrence_matches_loop_oracle_in_blocks():
    x = torch.randn(23, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for k in (1, 3, 7):
        assert k_occurrence(x, k=k, block=4).tolist() == _oracle(x, k)
        assert int(k_occurrence(x, k=k).sum()) == 23 * k


def test_skewness_and_errors():
    assert skewness(torch.tensor([1.0, 2.0, 3.0, 10.0])) == pytest.approx(_skew([1, 2, 3, 10]))
    with pytest.raises(ValueError):
        k_occurrence(torch.eye(3), k=3)
