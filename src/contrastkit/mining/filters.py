"""False-negative filters on :class:`~contrastkit.mining.candidates.Candidates`: boolean keep-masks.

Each filter returns a (Q, depth) boolean mask of the candidates it keeps;
:func:`eligible` combines them in the fixed order that makes the rank window
meaningful:

1. padding (index -1) and :func:`exclude_positives` (every known positive of
   the query, whatever its rank) are removed;
2. :func:`absolute_margin` keeps a candidate only if
   ``score <= positive - margin``; :func:`relative_margin` only if
   ``score <= positive - |positive| * margin`` (e.g. 0.05: at least 5% of the
   positive's magnitude below it). With several positives the *lowest*
   positive score is the reference (the safe side); a query without positive
   scores keeps everything;
3. :func:`max_score` drops candidates scoring above an absolute ceiling;
4. :func:`rank_window` keeps the candidates whose rank *among those still
   eligible* (0-based, best first) is in ``[range_min, range_max)``: the
   same order as sentence-transformers' ``mine_hard_negatives``.

A known positive can therefore never be emitted, whatever the other settings.

:class:`FilterConfig` itself filters nothing beyond the positives; mining's
default (:class:`~contrastkit.mining.pipeline.MiningConfig` and ``contrastkit
mine``) adds :data:`DEFAULT_RELATIVE_MARGIN`, so an unlabelled positive that
scores like the labelled one is not mined as a negative unless asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from contrastkit.mining.candidates import Candidates

DEFAULT_RELATIVE_MARGIN = 0.05  # mining's default: a negative scores at least 5% below the positive


@dataclass(frozen=True)
class FilterConfig:
    """Filter settings; None disables a filter. See the module docstring for the semantics."""

    range_min: int = 0
    range_max: int | None = None
    absolute_margin: float | None = None
    relative_margin: float | None = None
    max_score: float | None = None

    def __post_init__(self) -> None:
        if self.range_min < 0:
            raise ValueError(f"range_min must be >= 0, got {self.range_min}")
        if self.range_max is not None and self.range_max <= self.range_min:
            raise ValueError(f"range_max ({self.range_max}) must be greater than range_min ({self.range_min})")
        if self.relative_margin is not None and not 0 <= self.relative_margin <= 1:
            raise ValueError(f"relative_margin must be in [0, 1], got {self.relative_margin}")


def exclude_positives(candidates: Candidates, positives: Sequence[Sequence[int]]) -> Tensor:
    """False at every padding slot and every candidate that is a known positive of its query."""
    keep = candidates.index >= 0
    for q, pos in enumerate(positives):
        if len(pos):
            keep[q] &= ~torch.isin(candidates.index[q], torch.as_tensor(list(pos), dtype=torch.long))
    return keep


def reference_scores(positive_scores: Sequence[Tensor]) -> Tensor:
    """Per query, its lowest positive score (NaN for a query without one)."""
    return torch.stack([p.float().min() if p.numel() else torch.tensor(float("nan")) for p in positive_scores]).reshape(
        -1
    )


def absolute_margin(candidates: Candidates, positive_scores: Sequence[Tensor], margin: float) -> Tensor:
    """Keep ``score <= positive - margin`` (NaN reference: keep)."""
    ref = reference_scores(positive_scores).unsqueeze(1)
    return ~(candidates.scores > ref - margin)


def relative_margin(candidates: Candidates, positive_scores: Sequence[Tensor], margin: float) -> Tensor:
    """Keep ``score <= positive - |positive| * margin`` (NaN reference: keep)."""
    ref = reference_scores(positive_scores).unsqueeze(1)
    return ~(candidates.scores > ref - ref.abs() * margin)


def max_score(candidates: Candidates, ceiling: float) -> Tensor:
    """Keep ``score <= ceiling``."""
    return candidates.scores <= ceiling


def rank_window(keep: Tensor, range_min: int, range_max: int | None) -> Tensor:
    """Of the candidates ``keep`` marks (columns best first), those at eligible rank in [range_min, range_max)."""
    rank = keep.long().cumsum(dim=1) - 1
    window = rank >= range_min
    if range_max is not None:
        window &= rank < range_max
    return keep & window


def eligible(
    candidates: Candidates,
    positives: Sequence[Sequence[int]],
    config: FilterConfig,
    positive_scores: Sequence[Tensor] | None = None,
) -> Tensor:
    """The combined keep-mask, in the order of the module docstring.

    Raises ValueError when a margin is set without ``positive_scores``.
    """
    if len(positives) != candidates.index.shape[0]:
        raise ValueError(f"{len(positives)} positive lists for {candidates.index.shape[0]} queries")
    keep = exclude_positives(candidates, positives)
    if config.absolute_margin is not None or config.relative_margin is not None:
        if positive_scores is None:
            raise ValueError("a margin filter needs the positives' scores")
        if config.absolute_margin is not None:
            keep &= absolute_margin(candidates, positive_scores, config.absolute_margin)
        if config.relative_margin is not None:
            keep &= relative_margin(candidates, positive_scores, config.relative_margin)
    if config.max_score is not None:
        keep &= max_score(candidates, config.max_score)
    return rank_window(keep, config.range_min, config.range_max)
