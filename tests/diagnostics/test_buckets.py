"""Spearman and scores by length bucket against hand-computed values."""

import pytest
import torch

from contrastkit.diagnostics.buckets import bucket_edges, score_by_length, spearman


def _pearson(x, y):
    mx, my = sum(x) / len(x), sum(y) / len(y)
    cov = sum((a - mx) * (b - my) for a, b in zip(x, y))
    return cov / (sum((a - mx) ** 2 for a in x) * sum((b - my) ** 2 for b in y)) ** 0.5


def test_spearman_by_hand():
    assert spearman(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([10.0, 30.0, 20.0])) == pytest.approx(0.5)
    assert spearman(torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([4.0, 3.0, 2.0, 1.0])) == pytest.approx(-1.0)
    # ties: ranks x = (1.5, 1.5, 3, 4), y = (1, 2, 3, 4)
    x, y = [1.5, 1.5, 3, 4], [1, 2, 3, 4]
    assert spearman(torch.tensor([7.0, 7.0, 8.0, 9.0]), torch.tensor([1.0, 2.0, 3.0, 4.0])) == pytest.approx(
        _pearson(x, y)
    )
    with pytest.raises(ValueError):
        spearman(torch.ones(3), torch.tensor([1.0, 2.0, 3.0]))


def test_bucket_edges_keep_ties_together():
    assert bucket_edges([1, 2, 3, 4, 5, 6, 7, 8], n_buckets=4) == [(1, 2), (3, 4), (5, 6), (7, 8)]
    assert bucket_edges([3, 3, 3, 3, 9, 9], n_buckets=3) == [(3, 3), (9, 9)]
    assert bucket_edges([5], n_buckets=4) == [(5, 5)]


def test_score_by_length_per_bucket():
    sim = torch.tensor([0.1, 0.2, 0.3, 0.9, 0.8, 0.7])
    gold = torch.tensor([1.0, 2.0, 3.0, 1.0, 2.0, 3.0])
    buckets = score_by_length(sim, [2, 3, 4, 10, 11, 12], gold=gold, n_buckets=2)
    assert [(b.lo, b.hi, b.count) for b in buckets] == [(2, 4, 3), (10, 12, 3)]
    assert buckets[0].spearman == pytest.approx(1.0) and buckets[1].spearman == pytest.approx(-1.0)
    assert buckets[0].mean_cosine == pytest.approx(0.2) and buckets[1].mean_cosine == pytest.approx(0.8)
    plain = score_by_length(sim, [2, 3, 4, 10, 11, 12], edges=[(0, 3), (4, 4), (20, 30)])
    assert [(b.count, b.spearman) for b in plain] == [(2, None), (1, None)]
    const = score_by_length(sim[:3], [1, 1, 1], gold=torch.ones(3), n_buckets=1)
    assert const[0].spearman is None
