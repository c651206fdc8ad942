"""LA(SER)^3 sensitivity checks (thesis-methods section 2): the length attack and word-shuffle sensitivity.

Diagnostics of an encoder, not views: the views themselves (self- and
intra-reference elongation) live in :mod:`contrastkit.data.laser`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from contrastkit.data.laser import elongate
from contrastkit.data.views import example_rng, word_shuffle
from contrastkit.diagnostics.similarity import Histogram, histogram
from contrastkit.encoders.base import Encoder
from contrastkit.evaluation.sts import paired_cosine


def _cosines(encoder: Encoder, left: Sequence[str], right: Sequence[str], batch_size: int) -> Tensor:
    """cos(g(left_i), g(right_i)) (P,) float64, one ``encode`` call."""
    emb = encoder.encode([*left, *right], batch_size=batch_size)
    return paired_cosine(emb[: len(left)], emb[len(left) :])


@dataclass(frozen=True)
class LengthAttack:
    """Per pair: ``original`` cos(g(a), g(b)) and ``elongated`` cos(g(f(a, m)), g(f(b, m))), (P,) float64."""

    original: Tensor
    elongated: Tensor
    repeats: int
    histogram: Histogram

    @property
    def shift(self) -> Tensor:
        """``elongated - original`` (P,)."""
        return self.elongated - self.original

    @property
    def mean_shift(self) -> float:
        return float(self.shift.mean())


def length_attack(
    encoder: Encoder,
    pairs: Sequence[tuple[str, str]],
    *,
    repeats: int = 100,
    bins: int = 40,
    batch_size: int = 64,
) -> LengthAttack:
    """Length attack: ``cos(g(f(a, m)), g(f(b, m))) - cos(g(a), g(b))`` over ``pairs`` (m = 100 as in the PoC).

    Elongated inputs are truncated by the encoder to its maximum length, as
    in the spec. The histogram is over the shifts, ``bins`` equal bins on [-2, 2].
    """
    if not pairs:
        raise ValueError("length_attack: no pairs")
    a, b = [p[0] for p in pairs], [p[1] for p in pairs]
    original = _cosines(encoder, a, b, batch_size)
    elongated = _cosines(encoder, [elongate(t, repeats) for t in a], [elongate(t, repeats) for t in b], batch_size)
    shift_hist = histogram(elongated - original, bins=bins, lo=-2.0, hi=2.0)
    return LengthAttack(original=original, elongated=elongated, repeats=repeats, histogram=shift_hist)


def js_divergence(p: Sequence[float] | Tensor, q: Sequence[float] | Tensor, *, base: float = 2.0) -> float:
    """Jensen-Shannon divergence of two histograms (normalised here): ``KL(P||M)/2 + KL(Q||M)/2``, M = (P+Q)/2.

    ``0 log 0 = 0``; in ``[0, log_base 2]`` (base 2: [0, 1]).
    """
    P, Q = torch.as_tensor(p, dtype=torch.float64), torch.as_tensor(q, dtype=torch.float64)
    if P.shape != Q.shape or P.sum() <= 0 or Q.sum() <= 0 or bool((P < 0).any() | (Q < 0).any()):
        raise ValueError("js_divergence: need two non-negative histograms of the same length with some mass")
    P, Q = P / P.sum(), Q / Q.sum()
    M = (P + Q) / 2

    def kl(x: Tensor) -> float:
        keep = x > 0
        return float((x[keep] * torch.log(x[keep] / M[keep])).sum())

    return (kl(P) + kl(Q)) / 2 / math.log(base)


@dataclass(frozen=True)
class ShuffleSensitivity:
    """``original`` cos(s1, s2) and ``shuffled`` cos(shuffle(s1), s2), (P,) float64, with their histograms.

    ``js_divergence``: base 2, in [0, 1]. ``js_distance``: its natural-log
    square root (what ``scipy.spatial.distance.jensenshannon`` returns).
    """

    original: Tensor
    shuffled: Tensor
    original_histogram: Histogram
    shuffled_histogram: Histogram
    js_divergence: float
    js_distance: float


def shuffle_sensitivity(
    encoder: Encoder,
    pairs: Sequence[tuple[str, str]],
    *,
    seed: int = 0,
    bins: int = 40,
    batch_size: int = 64,
) -> ShuffleSensitivity:
    """Positional sensitivity: shuffle the words of s1 (:func:`word_shuffle`, pair i seeded by ``(seed, i)``).

    Compares the distribution of cos(s1, s2) with that of cos(shuffled s1, s2)
    by Jensen-Shannon divergence of their histograms (``bins`` equal bins on
    [-1, 1]; the bin count is our choice, the spec states none). The spec's
    data: STS-b test pairs.
    """
    if not pairs:
        raise ValueError("shuffle_sensitivity: no pairs")
    s1, s2 = [p[0] for p in pairs], [p[1] for p in pairs]
    shuffled_s1 = [word_shuffle(t, example_rng(seed, i)) for i, t in enumerate(s1)]
    original = _cosines(encoder, s1, s2, batch_size)
    shuffled = _cosines(encoder, shuffled_s1, s2, batch_size)
    h0, h1 = histogram(original, bins=bins), histogram(shuffled, bins=bins)
    js = js_divergence(h0.counts, h1.counts)
    return ShuffleSensitivity(
        original=original,
        shuffled=shuffled,
        original_histogram=h0,
        shuffled_histogram=h1,
        js_divergence=js,
        js_distance=math.sqrt(js * math.log(2.0)),
    )
