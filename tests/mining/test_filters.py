"""False-negative filters: known positives are never emitted; margins and the rank window by hand."""

from __future__ import annotations

import random

import pytest
import torch

from contrastkit.mining.candidates import Candidates
from contrastkit.mining.filters import FilterConfig, eligible, rank_window
from contrastkit.mining.sample import sample

INF = float("-inf")


def _random_case(rng: random.Random) -> tuple[Candidates, list[list[int]], list[torch.Tensor], FilterConfig]:
    n_docs, depth, n_q = rng.randint(1, 12), rng.randint(1, 10), rng.randint(1, 5)
    index, scores, positives, pos_scores = [], [], [], []
    for _ in range(n_q):
        docs = rng.sample(range(n_docs), min(depth, n_docs))
        row_scores = sorted((rng.uniform(-1, 1) for _ in docs), reverse=True)
        pad = depth - len(docs)
        index.append(docs + [-1] * pad)
        scores.append(row_scores + [INF] * pad)
        pos = rng.sample(range(n_docs), rng.randint(0, min(3, n_docs)))
        positives.append(pos)
        pos_scores.append(torch.tensor([rng.uniform(-1, 1) for _ in pos]))
    lo = rng.randint(0, 3)
    config = FilterConfig(
        range_min=lo,
        range_max=rng.choice([None, lo + rng.randint(1, 5)]),
        absolute_margin=rng.choice([None, 0.0, 0.1]),
        relative_margin=rng.choice([None, 0.05]),
        max_score=rng.choice([None, 0.5]),
    )
    return Candidates(torch.tensor(index), torch.tensor(scores)), positives, pos_scores, config


def test_property_no_known_positive_or_padding_is_ever_emitted() -> None:
    rng = random.Random(1234)
    emitted = 0
    for trial in range(300):
        found, positives, pos_scores, config = _random_case(rng)
        keep = eligible(found, positives, config, pos_scores)
        assert not (keep & (found.index < 0)).any()
        negs = sample(found, keep, rng.randint(1, 4), sampling=rng.choice(["top", "random"]), seed=trial)
        for q, chosen in enumerate(negs):
            assert not set(chosen) & set(positives[q]), (trial, q)
            assert all(d >= 0 for d in chosen)
            emitted += len(chosen)
    assert emitted > 100  # the property was exercised on real picks


def test_absolute_and_relative_margin_by_hand() -> None:
    found = Candidates(torch.tensor([[1, 2, 3, 4]]), torch.tensor([[0.9, 0.78, 0.72, 0.5]]))
    pos = [torch.tensor([0.8])]
    keep = eligible(found, [[0]], FilterConfig(absolute_margin=0.1), pos)
    assert keep[0].tolist() == [False, False, False, True]  # threshold 0.7
    keep = eligible(found, [[0]], FilterConfig(relative_margin=0.05), pos)
    assert keep[0].tolist() == [False, False, True, True]  # threshold 0.76
    # negative positive score: threshold = p - |p| m goes down, not up
    found_neg = Candidates(torch.tensor([[1, 2]]), torch.tensor([[-0.5, -0.53]]))
    keep = eligible(found_neg, [[0]], FilterConfig(relative_margin=0.1), [torch.tensor([-0.5])])
    assert keep[0].tolist() == [False, False]  # threshold -0.55


def test_several_positives_use_the_lowest_and_no_positive_keeps_all() -> None:
    found = Candidates(torch.tensor([[3, 4], [3, 4]]), torch.tensor([[0.6, 0.4], [0.6, 0.4]]))
    pos = [torch.tensor([0.9, 0.5]), torch.tensor([])]
    keep = eligible(found, [[0, 1], []], FilterConfig(absolute_margin=0.0), pos)
    assert keep.tolist() == [[False, True], [True, True]]


def test_rank_window_counts_eligible_candidates_only() -> None:
    keep = torch.tensor([[True, False, True, True, False, True]])
    assert rank_window(keep, 1, 3).tolist() == [[False, False, True, True, False, False]]
    found = Candidates(torch.tensor([[5, 0, 6, 7]]), torch.tensor([[0.9, 0.8, 0.7, 0.6]]))
    keep = eligible(found, [[0]], FilterConfig(range_min=1, range_max=2))
    assert found.index[0][keep[0]].tolist() == [6]  # the positive (doc 0) does not use up a rank


def test_config_validation_and_missing_scores() -> None:
    with pytest.raises(ValueError, match="range_min"):
        FilterConfig(range_min=-1)
    with pytest.raises(ValueError, match="range_max"):
        FilterConfig(range_min=3, range_max=3)
    with pytest.raises(ValueError, match="relative_margin"):
        FilterConfig(relative_margin=1.5)
    found = Candidates(torch.tensor([[1]]), torch.tensor([[0.1]]))
    with pytest.raises(ValueError, match="positives' scores"):
        eligible(found, [[0]], FilterConfig(absolute_margin=0.1))
    with pytest.raises(ValueError, match="positive lists"):
        eligible(found, [[0], [1]], FilterConfig())
