"""Quality of a mined negative set, scored with a judge (usually the frozen dense encoder).

Inputs are per query: the judge's scores of its positives and of its mined
negatives (1-d tensors). With several positives the *lowest* positive score
is the reference, as in the margin filters.

- :func:`hardness_gap`: mean ``positive - negative`` over all mined negatives
  (smaller = harder; negative values = negatives above the positive).
- :func:`false_negative_rate`: the fraction of mined negatives scoring at or
  above the reference positive: an *estimate* of how many are unlabelled
  positives, as good as the judge.

:func:`quality_warnings` turns a summary into warnings: above
:data:`FALSE_NEGATIVE_WARN_RATE` estimated false negatives the mined set
likely teaches the model to push away true answers.

ECI (objectives.md section 16, status ``partial``): only its structure is
known, ECI = Information Capacity x Discriminative Efficiency with the
efficiency the harmonic mean of a hardness term H and a safety term Sf. The
pieces are separate functions; :func:`capacity` follows the stated structure
(``log(K + 1)``), while :func:`hardness` and :func:`safety` are **placeholder
definitions of ours** (the paper's exact terms could not be verified), and
:func:`eci_partial` is their product, which is *not* the exact ECI of the
paper and must not be reported as such.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

ECI_STATUS = "partial"
FALSE_NEGATIVE_WARN_RATE = 0.1  # estimated false-negative rate above which mining warns


def _pairs(positive_scores: Sequence[Tensor], negative_scores: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """(reference per negative, negative scores), flattened over queries with a positive and negatives."""
    refs, negs = [], []
    for pos, neg in zip(positive_scores, negative_scores, strict=True):
        if pos.numel() and neg.numel():
            refs.append(pos.float().min().expand(neg.numel()))
            negs.append(neg.float())
    if not negs:
        return torch.zeros(0), torch.zeros(0)
    return torch.cat(refs), torch.cat(negs)


def hardness_gap(positive_scores: Sequence[Tensor], negative_scores: Sequence[Tensor]) -> float:
    """Mean ``reference positive - negative`` over all mined negatives (NaN when there are none)."""
    ref, neg = _pairs(positive_scores, negative_scores)
    return float((ref - neg).mean()) if neg.numel() else math.nan


def false_negative_rate(positive_scores: Sequence[Tensor], negative_scores: Sequence[Tensor]) -> float:
    """Fraction of mined negatives with ``score >= reference positive`` (NaN when there are none)."""
    ref, neg = _pairs(positive_scores, negative_scores)
    return float((neg >= ref).float().mean()) if neg.numel() else math.nan


def capacity(k: int) -> float:
    """Information capacity of a set of ``k`` negatives plus one positive: ``log(k + 1)`` (the InfoNCE bound)."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    return math.log(k + 1)


def hardness(negative_scores: Tensor) -> float:
    """Placeholder H: mean cosine of the negatives to the query, clipped to [0, 1]. Not the paper's exact term."""
    if negative_scores.numel() == 0:
        return 0.0
    return float(negative_scores.float().mean().clamp(0.0, 1.0))


def safety(positive_score: float, negative_scores: Tensor, *, margin: float = 0.0) -> float:
    """Placeholder Sf: fraction of negatives with ``positive - negative > margin`` (max-margin satisfied).

    Unsafe negatives (at or above the positive) count zero. Not the paper's exact term.
    """
    if negative_scores.numel() == 0:
        return 1.0
    return float((positive_score - negative_scores.float() > margin).float().mean())


def harmonic(h: float, sf: float) -> float:
    """Discriminative efficiency: the harmonic mean ``2 H Sf / (H + Sf)`` (0 when both are 0)."""
    return 0.0 if h + sf <= 0 else 2 * h * sf / (h + sf)


def eci_partial(positive_score: float, negative_scores: Tensor, *, margin: float = 0.0) -> float:
    """``capacity(K) * harmonic(hardness, safety)`` with the placeholder terms: status partial, not exact ECI."""
    h, sf = hardness(negative_scores), safety(positive_score, negative_scores, margin=margin)
    return capacity(negative_scores.numel()) * harmonic(h, sf)


def summarize(positive_scores: Sequence[Tensor], negative_scores: Sequence[Tensor]) -> dict[str, float | str]:
    """Every quality number of a mined set: gap, false-negative rate, mean ECI pieces (partial)."""
    per_query = [
        (float(p.float().min()), n.float())
        for p, n in zip(positive_scores, negative_scores, strict=True)
        if p.numel() and n.numel()
    ]

    def mean(values: list[float]) -> float:
        return sum(values) / len(values) if values else math.nan

    return {
        "hardness_gap": hardness_gap(positive_scores, negative_scores),
        "false_negative_rate": false_negative_rate(positive_scores, negative_scores),
        "mean_negative_score": mean([float(n.mean()) for _, n in per_query]),
        "eci_capacity": mean([capacity(n.numel()) for _, n in per_query]),
        "eci_hardness": mean([hardness(n) for _, n in per_query]),
        "eci_safety": mean([safety(p, n) for p, n in per_query]),
        "eci_partial": mean([eci_partial(p, n) for p, n in per_query]),
        "eci_status": ECI_STATUS,
    }


def quality_warnings(quality: dict[str, object], *, threshold: float = FALSE_NEGATIVE_WARN_RATE) -> list[str]:
    """Warnings about a :func:`summarize` result: the estimated false-negative rate above ``threshold``."""
    rate = quality.get("false_negative_rate")
    if not isinstance(rate, float) or not rate > threshold:
        return []
    return [
        f"estimated false-negative rate {rate:.2f} is above {threshold:.2f}: {rate:.0%} of the mined negatives "
        "score at or above their query's positive and are likely unlabelled positives; set a margin "
        "(--relative-margin 0.05, --margin, --max-score) or skip the top ranks (--range-min)"
    ]
