"""Pick the negatives from the eligible candidates: the top k, or k at random (seeded) within the window.

:func:`sample` returns, per query, up to ``k`` corpus indices in rank order
(best first, also for random sampling, so the output is stable and readable).
A query with fewer than ``k`` eligible candidates gets all of them; the
pipeline reports how many fell short. Random draws use one
``numpy.random.Generator(seed)`` consumed query by query, so the same seed,
data and settings give the same negatives.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from torch import Tensor

from contrastkit.mining.candidates import Candidates

Sampling = Literal["top", "random"]


def sample(
    candidates: Candidates, keep: Tensor, k: int, *, sampling: Sampling = "top", seed: int = 0
) -> list[list[int]]:
    """Up to ``k`` kept corpus indices per query (see the module docstring)."""
    if k < 1:
        raise ValueError(f"the number of negatives must be >= 1, got {k}")
    if sampling not in ("top", "random"):
        raise ValueError(f"unknown sampling {sampling!r}; expected top or random")
    rng = np.random.default_rng(seed)
    out = []
    for q in range(candidates.index.shape[0]):
        cols = keep[q].nonzero().flatten().numpy()
        if sampling == "random" and len(cols) > k:
            cols = np.sort(rng.choice(cols, size=k, replace=False))
        out.append(candidates.index[q, cols[:k]].tolist())
    return out
