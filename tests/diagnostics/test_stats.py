"""embedding_stats / pair_stats: the set-level summaries, reusing objectives.hardness for alignment and uniformity."""

import pytest
import torch
import torch.nn.functional as F

from contrastkit.diagnostics.stats import embedding_stats, pair_stats
from contrastkit.objectives.hardness import alignment, tolerance, uniformity


def test_embedding_stats_on_an_orthonormal_basis():
    stats = embedding_stats(torch.eye(6) * 3, hubness_k=2)
    assert stats.n == 6 and stats.dim == 6
    assert stats.mean_cosine == pytest.approx(0.0, abs=1e-12) and stats.effective_rank == pytest.approx(6.0)
    assert stats.uniformity == pytest.approx(float(uniformity(torch.eye(6))))
    assert stats.uniformity == pytest.approx(-4.0)  # every pair at squared distance 2
    assert stats.tolerance is None and stats.hubness.k == 2
    assert set(stats.scalars()) == {"mean_cosine", "isotropy", "effective_rank", "uniformity", "hubness"}


def test_embedding_stats_identical_vectors_tolerance_and_samples():
    stats = embedding_stats(torch.ones(5, 4), labels=["a", "a", "b", "b", "c"])
    assert stats.mean_cosine == pytest.approx(1.0) and stats.effective_rank == pytest.approx(1.0, abs=1e-6)
    assert stats.uniformity == pytest.approx(0.0) and stats.tolerance == pytest.approx(1.0)
    x = F.normalize(torch.randn(50, 8, generator=torch.Generator().manual_seed(0)), dim=-1)
    labels = [i % 3 for i in range(50)]
    small = embedding_stats(x, labels=labels, uniformity_sample=10, generator=torch.Generator().manual_seed(0))
    assert small.uniformity_n == 10 and small.hubness.k == 10
    assert small.tolerance == pytest.approx(float(tolerance(x, torch.tensor(labels))))
    with pytest.raises(ValueError):
        embedding_stats(x, labels=labels[:3])


def test_pair_stats_positives_by_threshold():
    g = torch.Generator().manual_seed(1)
    a = F.normalize(torch.randn(6, 4, generator=g), dim=-1)
    b = F.normalize(a + 0.3 * torch.randn(6, 4, generator=g), dim=-1)
    scores = torch.tensor([5.0, 4.5, 4.0, 1.0, 0.0, 2.0])
    stats = pair_stats(a, b, scores=scores, positive_threshold=4.0, lengths=[3, 4, 5, 6, 7, 8], n_buckets=2)
    assert stats.n_pairs == 6 and stats.n_positive == 3
    assert stats.alignment == pytest.approx(float(alignment(a[:3], b[:3])))
    assert sum(stats.positive_histogram.counts) == 3 and sum(stats.negative_histogram.counts) == 6
    assert stats.mean_positive == pytest.approx(float((a[:3] * b[:3]).sum(-1).mean()), abs=1e-6)
    assert len(stats.length_buckets) == 2 and stats.spearman is not None
    unscored = pair_stats(a, b)
    assert unscored.n_positive == 6 and unscored.spearman is None and unscored.positive_threshold is None
    assert set(unscored.scalars()) == {"alignment", "mean_positive", "mean_negative", "gap", "auc"}
