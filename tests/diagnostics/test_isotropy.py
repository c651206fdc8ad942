"""Mean cosine, partition-function isotropy and rogue dimensions against hand values and loop oracles."""

import math

import pytest
import torch

from contrastkit.diagnostics.isotropy import isotropy_score, mean_cosine, rogue_dimensions


def _cos(u, v):
    dot = sum(a * b for a, b in zip(u, v))
    return dot / (math.sqrt(sum(a * a for a in u)) * math.sqrt(sum(b * b for b in v)))


def test_mean_cosine_known_answers():
    assert mean_cosine(torch.ones(5, 3) * 2.5) == pytest.approx(1.0)
    assert mean_cosine(torch.eye(4)) == pytest.approx(0.0, abs=1e-12)
    # two orthogonal vectors and their bisector: cosines 0, 1/sqrt2, 1/sqrt2 over three unordered pairs
    x = torch.tensor([[1.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    assert mean_cosine(x) == pytest.approx(2 / math.sqrt(2) / 3)
    assert mean_cosine(torch.cat([torch.eye(3), -torch.eye(3)])) == pytest.approx(-1 / 5)


def test_mean_cosine_matches_loop_oracle():
    x = torch.randn(9, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64) + 0.7
    rows = x.tolist()
    pairs = [(i, j) for i in range(9) for j in range(9) if i != j]
    expected = sum(_cos(rows[i], rows[j]) for i, j in pairs) / len(pairs)
    assert mean_cosine(x) == pytest.approx(expected, abs=1e-12)
    with pytest.raises(ValueError):
        mean_cosine(torch.ones(1, 3))


def test_isotropy_score_known_answers():
    assert isotropy_score(torch.cat([torch.eye(5), -torch.eye(5)])) == pytest.approx(1.0)
    # identical unit vectors: Z(v) = n e, Z(-v) = n / e, Z(orthogonal) = n  ->  e^-2
    v = torch.nn.functional.normalize(torch.tensor([[1.0, 2.0, 2.0]]), dim=-1).repeat(6, 1)
    assert isotropy_score(v) == pytest.approx(math.exp(-2))


def test_isotropy_score_matches_loop_oracle_and_falls_with_a_shared_offset():
    g = torch.Generator().manual_seed(1)
    x = torch.nn.functional.normalize(torch.randn(40, 4, generator=g, dtype=torch.float64), dim=-1)
    _, vecs = torch.linalg.eigh(x.T @ x)
    rows = x.tolist()
    zs = []
    for k in range(4):
        c = vecs[:, k].tolist()
        for sign in (1, -1):
            zs.append(sum(math.exp(sign * sum(a * b for a, b in zip(r, c))) for r in rows))
    assert isotropy_score(x) == pytest.approx(min(zs) / max(zs), rel=1e-10)
    shifted = torch.nn.functional.normalize(x + torch.tensor([2.0, 0, 0, 0], dtype=torch.float64), dim=-1)
    assert isotropy_score(shifted) < isotropy_score(x) - 0.3


def test_rogue_dimensions_against_the_pairwise_definition():
    x = torch.randn(7, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64) + torch.tensor(
        [3.0, 0.0, 0.5, 0.0], dtype=torch.float64
    )
    rows = x.tolist()
    norms = [math.sqrt(sum(a * a for a in r)) for r in rows]
    total = sum(_cos(rows[i], rows[j]) for i in range(7) for j in range(7))  # i = j included
    shares = [
        sum(rows[i][k] * rows[j][k] / (norms[i] * norms[j]) for i in range(7) for j in range(7)) / total
        for k in range(4)
    ]
    got = rogue_dimensions(x)
    assert got.tolist() == pytest.approx(sorted(shares, reverse=True), abs=1e-12)
    assert float(got.sum()) == pytest.approx(1.0)
    assert float(got[0]) > 0.8  # the planted offset in dimension 0 drives the cosine


def test_rogue_dimensions_edge_cases():
    assert rogue_dimensions(torch.tensor([[0.0, 2.0, 0.0]] * 3)).tolist() == [1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="sum to zero"):
        rogue_dimensions(torch.cat([torch.eye(2), -torch.eye(2)]))
