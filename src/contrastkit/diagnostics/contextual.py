"""Contextualization measures of one layer's token vectors (thesis-methods section 1, D1 draw and D2 to D4).

Xiao, Long & Al Moubayed, *On Isotropy, Contextualization and Learning
Dynamics of Contrastive-based Sentence Representation Learning* (Findings of
ACL 2023, arXiv 2212.09170); the definitions follow the authors' released
``metrics.py``. Each function takes one layer's packed token vectors ``x``
(N, d) and the row bookkeeping of
:class:`~contrastkit.diagnostics.tokens.TokenStates` (``ids``, ``sentence``,
an ``eligible`` row mask); :func:`contextualization
<contrastkit.diagnostics.layerwise.contextualization>` runs them on every
layer and subtracts the anisotropy baseline.

* **D2** :func:`self_similarity`: per token id, the mean pairwise cosine of
  the vectors of its first occurrence in each sentence that contains it. High
  = the token looks the same in every context (little contextualization).
* **D3** :func:`intra_similarity`: per sentence, the mean cosine of its token
  vectors to their mean. High = the sentence's tokens collapse onto one
  direction.
* **D4** :func:`mean_norm`: the mean l2 norm of the token vectors.
* **D1** draw :func:`sample_tokens`: one uniform token from each drawn
  sentence (D1 itself is :func:`~contrastkit.diagnostics.isotropy.mean_cosine`
  of the sample).

Example (two sentences, token 7 in both, pointing the same way)::

    >>> import torch
    >>> x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0]])
    >>> ids, sentence = torch.tensor([7, 8, 7]), torch.tensor([0, 0, 1])
    >>> ss = self_similarity(x, ids, sentence, eligible=torch.ones(3, dtype=torch.bool), min_contexts=2)
    >>> ss.ids.tolist(), ss.values.tolist()
    ([7], [1.0])
    >>> [round(v, 4) for v in intra_similarity(x, sentence, eligible=torch.ones(3, dtype=torch.bool)).tolist()]
    [0.7071, 1.0]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class SelfSimilarity:
    """D2 per token id: ``ids`` (m,), ``values`` (m,) float64 mean pairwise cosine, ``contexts`` (m,) sentences."""

    ids: Tensor
    values: Tensor
    contexts: Tensor

    @property
    def mean(self) -> float:
        """The layer score: mean over the scored ids (0.0 when none is eligible)."""
        return float(self.values.mean()) if self.values.numel() else 0.0


def first_occurrences(ids: Tensor, sentence: Tensor, eligible: Tensor) -> Tensor:
    """Rows (sorted) of the first eligible occurrence of each (sentence, id); rows in sentence, position order."""
    rows = eligible.nonzero().reshape(-1)
    key = sentence[rows] * (int(ids.max()) + 1) + ids[rows]
    _, inverse = torch.unique(key, return_inverse=True)
    first = torch.full((int(inverse.max()) + 1,), rows.numel(), dtype=torch.long)
    first.scatter_reduce_(0, inverse, torch.arange(rows.numel()), reduce="amin")
    return rows[first].sort().values


@dataclass(frozen=True)
class Groups:
    """Layer-independent bookkeeping: ``rows`` of the vectors to use, grouped by ``inverse`` into ``keys`` (m,).

    For D2 the keys are token ids (rows = first occurrences, one per
    sentence); for D3 they are sentence indices (rows = eligible tokens).
    ``counts`` (m,) is the group size.
    """

    rows: Tensor
    inverse: Tensor
    keys: Tensor
    counts: Tensor

    @classmethod
    def of(cls, rows: Tensor, keys: Tensor) -> Groups:
        uniq, inverse = torch.unique(keys, return_inverse=True)
        return cls(rows, inverse, uniq, torch.bincount(inverse, minlength=uniq.numel()))

    def keep(self, groups: Tensor) -> Groups:
        """Only the groups where ``groups`` (m,) is True."""
        new_index = torch.cumsum(groups.long(), 0) - 1
        member = groups[self.inverse]
        return Groups(self.rows[member], new_index[self.inverse[member]], self.keys[groups], self.counts[groups])

    def sums(self, values: Tensor) -> Tensor:
        """Per group, the sum of ``values`` (one row per member)."""
        out = values.new_zeros((self.keys.numel(), *values.shape[1:]))
        return out.index_add_(0, self.inverse, values)


def self_similarity_groups(ids: Tensor, sentence: Tensor, *, eligible: Tensor, min_contexts: int = 5) -> Groups:
    """The D2 groups: first occurrences of each id per sentence, ids in at least ``max(2, min_contexts)`` sentences."""
    if not bool(eligible.any()):
        none = torch.zeros(0, dtype=torch.long)
        return Groups(none, none, none, none)
    rows = first_occurrences(ids, sentence, eligible)
    groups = Groups.of(rows, ids[rows])
    return groups.keep(groups.counts >= max(2, min_contexts))


def self_similarity(
    x: Tensor,
    ids: Tensor,
    sentence: Tensor,
    *,
    eligible: Tensor,
    min_contexts: int = 5,
    round_to: int | None = None,
) -> SelfSimilarity:
    """D2 on one layer ``x`` (N, d): per id, mean off-diagonal cosine of its first occurrences, one per sentence.

    An id is scored when its first occurrences among ``eligible`` rows come
    from at least ``max(2, min_contexts)`` sentences. With ``n`` vectors
    ``u_i`` (l2-normalised) the value is ``(||sum u_i||^2 - sum ||u_i||^2) / (n (n - 1))``,
    the mean over the ``n (n - 1)`` ordered pairs. ``round_to`` rounds each
    id's value (the reference code rounds to 3 decimals).
    """
    groups = self_similarity_groups(ids, sentence, eligible=eligible, min_contexts=min_contexts)
    return self_similarity_of(x, groups, round_to=round_to)


def self_similarity_of(x: Tensor, groups: Groups, *, round_to: int | None = None) -> SelfSimilarity:
    """D2 of one layer for precomputed :func:`self_similarity_groups` (shared by all layers)."""
    u = F.normalize(x[groups.rows].to(torch.float64), dim=-1)
    n = groups.counts.to(torch.float64)
    values = (groups.sums(u).pow(2).sum(1) - groups.sums(u.pow(2).sum(1))) / (n * (n - 1))
    if round_to is not None:
        values = torch.round(values, decimals=round_to)
    return SelfSimilarity(groups.keys, values, groups.counts)


def intra_similarity(x: Tensor, sentence: Tensor, *, eligible: Tensor) -> Tensor:
    """D3 per sentence on one layer: mean over its eligible tokens of cos(token, mean of its eligible tokens).

    Returns one float64 value per sentence that has an eligible token, in
    sentence order; the layer score is their mean.
    """
    rows = eligible.nonzero().reshape(-1)
    return intra_similarity_of(x, Groups.of(rows, sentence[rows]))


def intra_similarity_of(x: Tensor, groups: Groups) -> Tensor:
    """D3 of one layer for precomputed sentence groups (``Groups.of(rows, sentence[rows])``)."""
    v = x[groups.rows].to(torch.float64)
    centroid = groups.sums(v) / groups.counts[:, None]
    norms = v.norm(dim=1) * centroid.norm(dim=1)[groups.inverse]
    cos = (v * centroid[groups.inverse]).sum(1) / norms.clamp_min(1e-12)
    return groups.sums(cos) / groups.counts


def mean_norm(x: Tensor, *, eligible: Tensor) -> float:
    """D4: mean l2 norm of the eligible token vectors of one layer."""
    return float(x[eligible].to(torch.float64).norm(dim=-1).mean())


def sample_tokens(
    sentence: Tensor, eligible: Tensor, *, sentences: Tensor, generator: torch.Generator | None = None
) -> Tensor:
    """For each sentence index in ``sentences``, one row drawn uniformly among its eligible rows (the D1 draw)."""
    rows = eligible.nonzero().reshape(-1)
    num_sentences = int(sentence.max()) + 1
    count = torch.bincount(sentence[rows], minlength=num_sentences)
    start = count.cumsum(0) - count
    if bool((count[sentences] == 0).any()):
        raise ValueError("sample_tokens: a drawn sentence has no eligible token")
    offset = (torch.rand(sentences.numel(), generator=generator, dtype=torch.float64) * count[sentences]).long()
    return rows[start[sentences] + offset.clamp(max=count[sentences] - 1)]
