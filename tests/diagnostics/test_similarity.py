"""Positive vs negative similarities, separation AUC, average ranks and histograms, against hand values."""

import math

import pytest
import torch

from contrastkit.diagnostics.similarity import average_ranks, histogram, pair_similarities, separation_auc


def test_pair_similarities_match_loops():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)

    def cos(u, v):
        u, v = u.tolist(), v.tolist()
        return sum(x * y for x, y in zip(u, v)) / math.sqrt(sum(x * x for x in u) * sum(y * y for y in v))

    sims = pair_similarities(a, b)
    assert sims.positive.tolist() == pytest.approx([cos(a[i], b[i]) for i in range(4)], abs=1e-6)
    expected = [cos(a[i], b[j]) for i in range(4) for j in range(4) if i != j]
    assert sims.negative.tolist() == pytest.approx(expected, abs=1e-6)
    few = pair_similarities(a, b, max_negatives=5, generator=torch.Generator().manual_seed(1))
    assert few.negative.numel() == 5 and set(few.negative.tolist()) <= set(sims.negative.tolist())


def test_summary_and_auc_by_hand():
    pos, neg = torch.tensor([0.9, 0.5]), torch.tensor([0.4, 0.5, 0.95])
    # pairs won: 0.9 beats 0.4 and 0.5; 0.5 beats 0.4 and ties 0.5 -> (2 + 1 + 0.5) / 6
    assert separation_auc(pos, neg) == pytest.approx(3.5 / 6)
    assert separation_auc(torch.tensor([1.0]), torch.tensor([0.0, -1.0])) == 1.0
    assert separation_auc(torch.tensor([0.0]), torch.tensor([1.0])) == 0.0
    a = torch.eye(3)
    summary = pair_similarities(a, a).summary()
    assert summary == pytest.approx({"mean_positive": 1.0, "mean_negative": 0.0, "gap": 1.0, "auc": 1.0})


def test_average_ranks_with_ties():
    assert average_ranks(torch.tensor([10.0, 20.0, 10.0, 5.0, 20.0, 20.0])).tolist() == [2.5, 5.0, 2.5, 1.0, 5.0, 5.0]


def test_histogram_counts_and_edges():
    h = histogram(torch.tensor([-1.0, -0.6, 0.0, 0.49, 0.5, 1.0, 3.0]), bins=4)
    assert h.edges == pytest.approx([-1.0, -0.5, 0.0, 0.5, 1.0])
    assert h.counts == [2, 0, 2, 3]  # 1.0 and the clamped 3.0 fall in the closed last bin
    with pytest.raises(ValueError):
        histogram(torch.zeros(2), bins=0)
