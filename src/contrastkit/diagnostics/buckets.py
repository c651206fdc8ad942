"""Scores by text-length bucket: does the encoder keep its quality on short and on long texts?

Pairs are grouped by a length (the caller's choice: ``analyze`` uses the
mean word count of the two texts) into buckets of about equal size, and each
bucket gets its own score: the Spearman correlation of cosine similarity with
the gold scores (STS-style data) and the mean cosine.

How to read it: a sharp drop of Spearman in the longest (or shortest)
bucket is a length-generalisation problem; a mean cosine that climbs with
length while gold scores do not means long texts look alike to the encoder
(the length bias LA(SER)^3 targets, thesis-methods section 2).

Example::

    >>> import torch
    >>> round(spearman(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([10.0, 30.0, 20.0])), 6)
    0.5
    >>> [(b.lo, b.hi, b.count) for b in score_by_length(torch.zeros(4), [3, 5, 9, 12], n_buckets=2)]
    [(3, 5, 2), (9, 12, 2)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from contrastkit.evaluation.sts import spearman


@dataclass(frozen=True)
class LengthBucket:
    """One bucket: lengths in ``[lo, hi]`` (inclusive), ``count`` items, their mean cosine and Spearman.

    ``spearman`` is None without gold scores, with fewer than 3 items or when
    either side is constant (the correlation is undefined).
    """

    lo: int
    hi: int
    count: int
    mean_cosine: float
    spearman: float | None


def bucket_edges(lengths: Sequence[int], *, n_buckets: int = 4) -> list[tuple[int, int]]:
    """Inclusive ``(lo, hi)`` length ranges splitting ``lengths`` into about ``n_buckets`` equal-count groups.

    Cuts fall between distinct length values (equal lengths never straddle
    two buckets), so ties can give fewer buckets than asked.
    """
    if n_buckets < 1 or not lengths:
        raise ValueError(f"bucket_edges: need lengths and n_buckets >= 1, got {len(lengths)} lengths, {n_buckets}")
    values = sorted(lengths)
    n = len(values)
    ranges: list[tuple[int, int]] = []
    start = 0
    for b in range(1, n_buckets + 1):
        end = round(b * n / n_buckets)  # exclusive index of this bucket's last item
        if end <= start:
            continue
        while end < n and values[end] == values[end - 1]:
            end += 1  # keep ties together
        ranges.append((values[start], values[end - 1]))
        start = end
        if start >= n:
            break
    return ranges


def score_by_length(
    similarity: Tensor,
    lengths: Sequence[int],
    *,
    gold: Tensor | None = None,
    n_buckets: int = 4,
    edges: Sequence[tuple[int, int]] | None = None,
) -> list[LengthBucket]:
    """Per length bucket (``edges``, or :func:`bucket_edges` of ``lengths``): count, mean cosine, Spearman vs ``gold``.

    ``similarity`` (n,) holds each pair's cosine, ``lengths`` its length,
    ``gold`` (n,) optional reference scores. Items outside every given edge
    range are left out.
    """
    if similarity.dim() != 1 or similarity.numel() != len(lengths):
        raise ValueError(f"score_by_length: {similarity.numel()} similarities for {len(lengths)} lengths")
    if gold is not None and gold.shape != similarity.shape:
        raise ValueError(f"score_by_length: gold has shape {tuple(gold.shape)}, expected {tuple(similarity.shape)}")
    length_t = torch.as_tensor(list(lengths))
    out = []
    for lo, hi in edges if edges is not None else bucket_edges(lengths, n_buckets=n_buckets):
        inside = (length_t >= lo) & (length_t <= hi)
        count = int(inside.sum())
        if count == 0:
            continue
        sims = similarity[inside].to(torch.float64)
        rho = None
        if gold is not None and count >= 3:
            try:
                rho = spearman(sims, gold[inside].to(torch.float64))
            except ValueError:
                rho = None
        out.append(LengthBucket(lo=int(lo), hi=int(hi), count=count, mean_cosine=float(sims.mean()), spearman=rho))
    return out
