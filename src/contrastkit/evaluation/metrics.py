"""Retrieval metrics on rankings: nDCG@k, MRR@k, recall@k and average precision.

Pure functions, no tensors. The definitions are trec_eval's (as used by
pytrec_eval and BEIR), with graded relevance from the qrels:

* a document is *relevant* to a query when its qrels grade is > 0; a document
  missing from the qrels has grade 0; negative grades count as 0 (trec_eval
  would allow negative nDCG gains; clamping keeps every value in [0, 1]).
* ``nDCG@k = DCG@k / IDCG@k`` with ``DCG@k = sum_{i=1..k} rel(d_i) / log2(i + 1)``
  (gain = grade, not ``2**grade - 1``) and IDCG@k the DCG of the qrels' grades
  sorted in decreasing order, cut at k (whatever the ranking's length).
* ``MRR@k`` (reciprocal rank): ``1 / i`` for the first relevant ``d_i`` with
  ``i <= k``, else 0.
* ``recall@k``: relevant documents among the first k, divided by the number of
  relevant documents in the qrels.
* ``AP`` (MAP when averaged): ``sum over relevant d_i in the ranking of
  precision@i``, divided by the number of relevant documents in the qrels;
  computed over the whole ranking given.

A ranking is a sequence of distinct document ids, best first; it may be
shorter than k. Ties in scores must be resolved before: :func:`rank_by_score`
sorts by decreasing score, ties by increasing document id (deterministic; note
that trec_eval itself breaks ties by *decreasing* document id).

Averages (:func:`mean_metrics`) run over the queries that have a ranking and at
least one relevant document in the qrels; the others are excluded, as BEIR does.

Example::

    >>> ranking = ["d3", "d1", "d2"]
    >>> qrels = {"d1": 2, "d2": 1}
    >>> round(ndcg_at_k(ranking, qrels, 3), 4)   # (2/log2(3) + 1/log2(4)) / (2 + 1/log2(3))
    0.6697
    >>> mrr_at_k(ranking, qrels, 10), recall_at_k(ranking, qrels, 2)
    (0.5, 0.5)
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from _typeshed import SupportsRichComparison

QueryId = TypeVar("QueryId", bound=Hashable)
DocId = TypeVar("DocId", bound=Hashable)
"""Query and document ids: any hashable values (strings in BEIR), one type per call."""
OrderedDocId = TypeVar("OrderedDocId", bound="SupportsRichComparison")
"""A document id that also orders (ties in a ranking break by increasing id)."""


def ndcg_at_k(ranking: Sequence[DocId], relevance: Mapping[DocId, float], k: int) -> float:
    """nDCG@k of one query: graded gains, log2 discount, ideal DCG from the qrels (see the module docstring)."""
    _check(ranking, relevance, k)
    dcg = sum(_gain(relevance, doc) / math.log2(i + 2) for i, doc in enumerate(ranking[:k]))
    ideal = sorted((g for g in relevance.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg


def mrr_at_k(ranking: Sequence[DocId], relevance: Mapping[DocId, float], k: int) -> float:
    """Reciprocal rank of the first relevant document within the top k (0 when there is none)."""
    _check(ranking, relevance, k)
    for i, doc in enumerate(ranking[:k]):
        if _gain(relevance, doc) > 0:
            return 1.0 / (i + 1)
    return 0.0


def recall_at_k(ranking: Sequence[DocId], relevance: Mapping[DocId, float], k: int) -> float:
    """Relevant documents in the top k over all relevant documents of the query."""
    _check(ranking, relevance, k)
    hits = sum(1 for doc in ranking[:k] if _gain(relevance, doc) > 0)
    return hits / _num_relevant(relevance)


def average_precision(ranking: Sequence[DocId], relevance: Mapping[DocId, float]) -> float:
    """Mean of precision@i over the ranks i of relevant documents, over all relevant documents of the query.

    Relevant documents missing from the ranking contribute 0 (the denominator
    is the qrels' count), as in trec_eval's ``map``.
    """
    _check(ranking, relevance, 1)
    hits, total = 0, 0.0
    for i, doc in enumerate(ranking):
        if _gain(relevance, doc) > 0:
            hits += 1
            total += hits / (i + 1)
    return total / _num_relevant(relevance)


def query_metrics(
    ranking: Sequence[DocId], relevance: Mapping[DocId, float], k_values: Iterable[int]
) -> dict[str, float]:
    """All metrics of one query: ``ndcg@k``, ``mrr@k``, ``recall@k`` for each k, and ``map``."""
    out: dict[str, float] = {}
    for k in k_values:
        out[f"ndcg@{k}"] = ndcg_at_k(ranking, relevance, k)
        out[f"mrr@{k}"] = mrr_at_k(ranking, relevance, k)
        out[f"recall@{k}"] = recall_at_k(ranking, relevance, k)
    out["map"] = average_precision(ranking, relevance)
    return out


def per_query_metrics(
    rankings: Mapping[QueryId, Sequence[DocId]],
    qrels: Mapping[QueryId, Mapping[DocId, float]],
    *,
    k_values: Iterable[int] = (1, 10, 100),
) -> dict[QueryId, dict[str, float]]:
    """:func:`query_metrics` for every query that has a ranking and at least one relevant document.

    Queries without a relevant document, without qrels or without a ranking
    are left out (they are not scored as 0).
    """
    k_values = tuple(k_values)
    return {
        qid: query_metrics(ranking, qrels[qid], k_values)
        for qid, ranking in rankings.items()
        if qid in qrels and _num_relevant(qrels[qid]) > 0
    }


def mean_metrics(per_query: Mapping[QueryId, Mapping[str, float]]) -> dict[str, float]:
    """Each metric averaged over the queries of ``per_query`` (a :func:`per_query_metrics` result)."""
    if not per_query:
        raise ValueError("no query to average over: no query has both a ranking and a relevant document")
    names = next(iter(per_query.values())).keys()
    return {name: math.fsum(m[name] for m in per_query.values()) / len(per_query) for name in names}


def rank_by_score(scores: Mapping[OrderedDocId, float], k: int | None = None) -> list[OrderedDocId]:
    """Document ids by decreasing score, ties by increasing document id; the first ``k`` when given."""
    ranked = sorted(scores, key=lambda doc: (-scores[doc], doc))
    return ranked if k is None else ranked[:k]


def _gain(relevance: Mapping[DocId, float], doc: DocId) -> float:
    return max(relevance.get(doc, 0), 0)


def _num_relevant(relevance: Mapping[DocId, float]) -> int:
    return sum(1 for g in relevance.values() if g > 0)


def _check(ranking: Sequence[DocId], relevance: Mapping[DocId, float], k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if _num_relevant(relevance) == 0:
        raise ValueError("the query has no relevant document (grade > 0); such queries are excluded from averages")
    if len(set(ranking)) != len(ranking):
        raise ValueError("the ranking lists a document more than once")
