"""Positive versus negative similarities: the two distributions, their histograms and how well they separate.

For paired embeddings ``a`` (n, d) and ``b`` (n, d) (row i of each is a
positive pair), the *positive* similarities are ``cos(a_i, b_i)`` and the
*negative* ones ``cos(a_i, b_j)`` for ``j != i``: every other pair's second
text acts as a negative, as in-batch negatives do in training.

Example::

    >>> import torch
    >>> a = torch.eye(3)
    >>> sims = pair_similarities(a, a)           # positives identical, negatives orthogonal
    >>> sims.positive.tolist(), sims.negative.tolist()
    ([1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    >>> separation_auc(sims.positive, sims.negative)
    1.0
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class PairSimilarities:
    """Cosine similarities of positive pairs (P,) and of negative pairs (N,), float64."""

    positive: Tensor
    negative: Tensor

    def summary(self) -> dict[str, float]:
        """``mean_positive``, ``mean_negative``, their ``gap`` and the ``auc`` of :func:`separation_auc`."""
        pos, neg = float(self.positive.mean()), float(self.negative.mean())
        return {
            "mean_positive": pos,
            "mean_negative": neg,
            "gap": pos - neg,
            "auc": separation_auc(self.positive, self.negative),
        }


@dataclass(frozen=True)
class Histogram:
    """Counts of values in ``len(edges) - 1`` equal-width bins; ``edges`` ascending, the last bin closed."""

    counts: list[int]
    edges: list[float]


def pair_similarities(
    a: Tensor, b: Tensor, *, max_negatives: int | None = None, generator: torch.Generator | None = None
) -> PairSimilarities:
    """Positive ``cos(a_i, b_i)`` and negative ``cos(a_i, b_j), j != i`` similarities of ``a``, ``b`` (n, d), n >= 2.

    All ``n (n - 1)`` negatives are kept, in row-major order, unless
    ``max_negatives`` is set: then that many are drawn uniformly without
    replacement with ``generator``.
    """
    if a.shape != b.shape or a.dim() != 2 or a.shape[0] < 2:
        raise ValueError(f"pair_similarities: expected a, b of the same shape (n >= 2, d), got {tuple(a.shape)}, "
                         f"{tuple(b.shape)}")  # fmt: skip
    ua = F.normalize(a.detach().to(torch.float64), dim=-1)
    ub = F.normalize(b.detach().to(torch.float64), dim=-1)
    sim = ua @ ub.T
    n = sim.shape[0]
    off = ~torch.eye(n, dtype=torch.bool)
    negative = sim[off]
    if max_negatives is not None and max_negatives < negative.numel():
        negative = negative[torch.randperm(negative.numel(), generator=generator)[:max_negatives]]
    return PairSimilarities(positive=sim.diagonal().clone(), negative=negative)


def separation_auc(positive: Tensor, negative: Tensor) -> float:
    """``P(s_pos > s_neg) + P(s_pos = s_neg) / 2`` over all (positive, negative) pairs (ROC AUC; Mann-Whitney U).

    How to read it: 1 when every positive pair is more similar than every
    negative pair, 0.5 when the two distributions cannot be told apart. The
    fraction of mass the two histograms share is what costs retrieval.
    """
    pos, neg = positive.detach().to(torch.float64).reshape(-1), negative.detach().to(torch.float64).reshape(-1)
    if pos.numel() == 0 or neg.numel() == 0:
        raise ValueError("separation_auc: need at least one positive and one negative")
    values = torch.cat([pos, neg])
    ranks = average_ranks(values)
    rank_sum = ranks[: pos.numel()].sum()
    u = rank_sum - pos.numel() * (pos.numel() + 1) / 2
    return float(u / (pos.numel() * neg.numel()))


def average_ranks(values: Tensor) -> Tensor:
    """1-based ranks of a 1-d tensor, ties sharing their average rank (float64)."""
    v = values.detach().reshape(-1)
    order = torch.sort(v, stable=True).indices
    sorted_v = v[order]
    n = v.numel()
    # start of each run of equal values, and each element's run id
    new_run = torch.ones(n, dtype=torch.bool)
    new_run[1:] = sorted_v[1:] != sorted_v[:-1]
    run_id = torch.cumsum(new_run.long(), 0) - 1
    starts = torch.nonzero(new_run).reshape(-1).to(torch.float64)
    ends = torch.cat([starts[1:], torch.tensor([float(n)], dtype=torch.float64)])
    run_rank = (starts + 1 + ends) / 2  # mean of the 1-based ranks start+1 .. end
    ranks = torch.empty(n, dtype=torch.float64)
    ranks[order] = run_rank[run_id]
    return ranks


def histogram(values: Tensor, *, bins: int = 40, lo: float = -1.0, hi: float = 1.0) -> Histogram:
    """Counts of ``values`` in ``bins`` equal bins over ``[lo, hi]``; values outside are clamped into the end bins."""
    if bins < 1 or not hi > lo:
        raise ValueError(f"histogram: need bins >= 1 and hi > lo, got bins={bins}, lo={lo}, hi={hi}")
    v = values.detach().to(torch.float64).reshape(-1).clamp(lo, hi)
    index = ((v - lo) / (hi - lo) * bins).floor().long().clamp(max=bins - 1)
    counts = torch.bincount(index, minlength=bins)
    edges = torch.linspace(lo, hi, bins + 1, dtype=torch.float64)
    return Histogram(counts=[int(c) for c in counts], edges=[float(e) for e in edges])
