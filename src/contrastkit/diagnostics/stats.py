"""Sentence-embedding diagnostics in one call: the whole set of measures on a sample of embeddings or pairs.

:func:`embedding_stats` summarises a set of embeddings (mean cosine,
isotropy, effective rank, uniformity, hubness, and tolerance when labels are
given); :func:`pair_stats` summarises positive pairs (alignment, positive vs
negative similarity histograms, Spearman against gold scores and by length
bucket). Both l2-normalise first (cosine geometry, the shared default of the
thesis-methods spec), draw any sub-sample with the generator passed in, and
return plain dataclasses whose ``to_dict()`` is JSON-ready.

Alignment, uniformity and tolerance are those of
:mod:`contrastkit.objectives.hardness` (Wang & Isola 2020; Wang & Liu 2021).

Example::

    >>> import torch
    >>> stats = embedding_stats(torch.eye(8), hubness_k=2)
    >>> round(stats.mean_cosine, 6), round(stats.effective_rank, 6)
    (0.0, 8.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from contrastkit.diagnostics.buckets import LengthBucket, score_by_length, spearman
from contrastkit.diagnostics.hubness import Hubness, hubness
from contrastkit.diagnostics.isotropy import isotropy_score, mean_cosine
from contrastkit.diagnostics.rank import effective_rank
from contrastkit.diagnostics.similarity import Histogram, histogram, pair_similarities
from contrastkit.objectives.hardness import alignment, tolerance, uniformity


@dataclass(frozen=True)
class EmbeddingStats:
    """Geometry of a set of l2-normalised embeddings; see each function for how to read a value.

    Attributes:
        n, dim: embeddings measured and their dimension.
        mean_cosine: :func:`~contrastkit.diagnostics.isotropy.mean_cosine` (anisotropy; 0 = none).
        isotropy: :func:`~contrastkit.diagnostics.isotropy.isotropy_score` (1 = isotropic).
        effective_rank: :func:`~contrastkit.diagnostics.rank.effective_rank` (out of ``dim``).
        uniformity: Wang & Isola's ``log mean exp(-2 ||x_i - x_j||^2)`` on ``uniformity_n`` of them
            (in [-4, 0]; lower = more uniform).
        hubness: :func:`~contrastkit.diagnostics.hubness.hubness` summary.
        tolerance: Wang & Liu's mean same-label similarity (None without labels or same-label pairs).
    """

    n: int
    dim: int
    mean_cosine: float
    isotropy: float
    effective_rank: float
    uniformity: float
    uniformity_n: int
    hubness: Hubness
    tolerance: float | None = None

    def scalars(self) -> dict[str, float]:
        """The headline numbers, flat (for metric logs)."""
        out = {
            "mean_cosine": self.mean_cosine,
            "isotropy": self.isotropy,
            "effective_rank": self.effective_rank,
            "uniformity": self.uniformity,
            "hubness": self.hubness.skewness,
        }
        if self.tolerance is not None:
            out["tolerance"] = self.tolerance
        return out

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _sample(n: int, size: int, generator: torch.Generator | None) -> Tensor:
    """All of ``range(n)`` when ``size >= n``, else ``size`` indices without replacement (sorted)."""
    if size >= n:
        return torch.arange(n)
    return torch.randperm(n, generator=generator)[:size].sort().values


def embedding_stats(
    x: Tensor,
    *,
    labels: Sequence[object] | None = None,
    uniformity_sample: int = 512,
    hubness_k: int = 10,
    generator: torch.Generator | None = None,
) -> EmbeddingStats:
    """Every set-level measure on ``x`` (n, d), l2-normalised first; needs n >= 2.

    Uniformity materialises all pairs (memory O(n^2 d)), so it runs on
    ``uniformity_sample`` rows drawn with ``generator``. ``hubness_k`` is
    capped at ``n - 1``. ``labels`` (n,) give tolerance.
    """
    if x.dim() != 2 or x.shape[0] < 2:
        raise ValueError(f"embedding_stats: need (n >= 2, d) embeddings, got {tuple(x.shape)}")
    z = F.normalize(x.detach().float(), dim=-1)
    n = z.shape[0]
    tol = None
    if labels is not None:
        if len(labels) != n:
            raise ValueError(f"embedding_stats: {len(labels)} labels for {n} embeddings")
        codes = {label: i for i, label in enumerate(dict.fromkeys(labels))}
        label_t = torch.tensor([codes[label] for label in labels])
        if len(codes) < n:
            tol = float(tolerance(z, label_t))
    u_rows = _sample(n, uniformity_sample, generator)
    return EmbeddingStats(
        n=n,
        dim=z.shape[1],
        mean_cosine=mean_cosine(z),
        isotropy=isotropy_score(z),
        effective_rank=effective_rank(z),
        uniformity=float(uniformity(z[u_rows])),
        uniformity_n=int(u_rows.numel()),
        hubness=hubness(z, k=min(hubness_k, n - 1)),
        tolerance=tol,
    )


@dataclass(frozen=True)
class PairStats:
    """Positive pairs and how they separate from negatives.

    Attributes:
        n_pairs: pairs given; n_positive: those counted as positives (gold score >= ``positive_threshold``).
        alignment: Wang & Isola's ``mean ||x_i - y_i||^2`` over positives (0 = identical, at most 4).
        mean_positive, mean_negative, gap, auc: see :class:`~contrastkit.diagnostics.similarity.PairSimilarities`.
        positive_histogram, negative_histogram: cosine histograms over [-1, 1].
        spearman: Spearman of cosine against the gold scores over all pairs (None without scores).
        length_buckets: per length bucket (see :mod:`contrastkit.diagnostics.buckets`).
    """

    n_pairs: int
    n_positive: int
    positive_threshold: float | None
    alignment: float | None
    mean_positive: float | None
    mean_negative: float | None
    gap: float | None
    auc: float | None
    positive_histogram: Histogram | None
    negative_histogram: Histogram | None
    spearman: float | None
    length_buckets: list[LengthBucket]

    def scalars(self) -> dict[str, float]:
        """The headline numbers that exist, flat (for metric logs)."""
        names = ("alignment", "mean_positive", "mean_negative", "gap", "auc", "spearman")
        return {k: float(v) for k in names if (v := getattr(self, k)) is not None}

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def pair_stats(
    a: Tensor,
    b: Tensor,
    *,
    scores: Tensor | None = None,
    positive_threshold: float | None = None,
    lengths: Sequence[int] | None = None,
    n_buckets: int = 4,
    bins: int = 40,
) -> PairStats:
    """Pair measures for embeddings ``a``, ``b`` (n, d) of pairs (a_i, b_i), l2-normalised first.

    Positives are all pairs, or with ``scores`` and ``positive_threshold`` the
    pairs whose score reaches it (SimCSE's protocol for STS-B: score >= 4 of
    5). Negatives are ``(a_i, b_j), j != i`` among the positives. Spearman and
    the length buckets (``lengths`` (n,)) use every pair.
    """
    if a.shape != b.shape or a.dim() != 2:
        raise ValueError(f"pair_stats: a and b must both be (n, d), got {tuple(a.shape)}, {tuple(b.shape)}")
    za, zb = F.normalize(a.detach().float(), dim=-1), F.normalize(b.detach().float(), dim=-1)
    cos = (za * zb).sum(-1).double()
    positive = torch.ones(a.shape[0], dtype=torch.bool)
    if scores is not None and positive_threshold is not None:
        positive = scores >= positive_threshold
    n_pos = int(positive.sum())
    summary: dict[str, float | None] = dict.fromkeys(("mean_positive", "mean_negative", "gap", "auc"))
    pos_hist = neg_hist = None
    if n_pos >= 2:
        sims = pair_similarities(za[positive], zb[positive])
        summary = dict(sims.summary())
        pos_hist, neg_hist = histogram(sims.positive, bins=bins), histogram(sims.negative, bins=bins)
    rho = None
    if scores is not None and a.shape[0] >= 2:
        try:
            rho = spearman(cos, scores.double())
        except ValueError:
            rho = None
    buckets = score_by_length(cos, lengths, gold=scores, n_buckets=n_buckets) if lengths is not None else []
    return PairStats(
        n_pairs=a.shape[0],
        n_positive=n_pos,
        positive_threshold=positive_threshold if scores is not None else None,
        alignment=float(alignment(za[positive], zb[positive])) if n_pos else None,
        positive_histogram=pos_hist,
        negative_histogram=neg_hist,
        spearman=rho,
        length_buckets=buckets,
        **summary,
    )
