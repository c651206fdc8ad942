"""Sampling within the window: top-k in rank order, seeded random draws."""

from __future__ import annotations

import pytest
import torch

from contrastkit.mining.candidates import Candidates
from contrastkit.mining.sample import sample


def _found(n: int = 20) -> tuple[Candidates, torch.Tensor]:
    index = torch.arange(100, 100 + n).unsqueeze(0).repeat(2, 1)
    scores = torch.linspace(1, 0, n).unsqueeze(0).repeat(2, 1)
    keep = torch.ones(2, n, dtype=torch.bool)
    keep[1, 3:] = False
    return Candidates(index, scores), keep


def test_top_takes_the_first_kept_in_rank_order() -> None:
    found, keep = _found()
    keep[0, 0] = False
    assert sample(found, keep, 4) == [[101, 102, 103, 104], [100, 101, 102]]


def test_random_is_deterministic_by_seed_and_within_the_window() -> None:
    found, keep = _found()
    a = sample(found, keep, 5, sampling="random", seed=7)
    assert a == sample(found, keep, 5, sampling="random", seed=7)
    draws = {tuple(sample(found, keep, 5, sampling="random", seed=s)[0]) for s in range(6)}
    assert len(draws) > 1  # different seeds give different draws
    assert a[0] == sorted(a[0]) and len(set(a[0])) == 5  # rank order, no repeats
    assert a[1] == [100, 101, 102]  # fewer kept than k: all of them


def test_bad_arguments() -> None:
    found, keep = _found()
    with pytest.raises(ValueError, match="negatives"):
        sample(found, keep, 0)
    with pytest.raises(ValueError, match="sampling"):
        sample(found, keep, 2, sampling="best")  # type: ignore[arg-type]
