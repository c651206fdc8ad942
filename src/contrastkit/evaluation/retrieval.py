"""Retrieval evaluation: encode queries and corpus, exact cosine top-k search in blocks, trec_eval metrics.

:func:`evaluate_retrieval` is the BEIR protocol on any
:class:`~contrastkit.encoders.base.Encoder`: every query that has a relevant
document is encoded (with the query prompt), every corpus document is encoded
(with the document prompt), both are l2-normalised, and each query ranks the
whole corpus by cosine similarity. Nothing is excluded (unlike BEIR's default,
a document whose id equals the query id stays in the ranking). Ties are broken
by document id, in increasing order. The metrics are those of
:mod:`contrastkit.evaluation.metrics` over the top ``max(k_values)``
documents; ``map`` is average precision over that returned ranking.

:func:`search` is the exact top-k search itself: query blocks times document
blocks, the running top k merged after each document block, so memory is
O(query_block x doc_block) whatever the corpus size.

Example::

    >>> import torch
    >>> q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> d = torch.tensor([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    >>> scores, index = search(q, d, top_k=2, doc_block=2)
    >>> index.tolist()   # the tie between documents 1 and 2 goes to the lower index
    [[1, 2], [0, 1]]
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic

import torch
import torch.nn.functional as F
from torch import Tensor

from contrastkit.evaluation.metrics import OrderedDocId, QueryId, mean_metrics, per_query_metrics

if TYPE_CHECKING:  # only the type: importing the encoders package loads transformers
    from contrastkit.encoders.base import TextEmbedder


@dataclass(frozen=True)
class RetrievalResult(Generic[QueryId, OrderedDocId]):
    """What :func:`evaluate_retrieval` measured.

    Attributes:
        metrics: mean over evaluated queries, e.g. ``{"ndcg@10": ..., "mrr@10": ..., "recall@100": ..., "map": ...}``.
        per_query: the same metrics for each evaluated query id.
        rankings: per evaluated query, its top ``max(k_values)`` ``(doc_id, cosine)`` pairs, best first.
        num_queries: queries evaluated (those with at least one relevant document).
        num_docs: corpus size.
        encode_seconds: time spent encoding queries and corpus.
        search_seconds: time spent in the top-k search and the metrics.
    """

    metrics: dict[str, float]
    per_query: dict[QueryId, dict[str, float]]
    rankings: dict[QueryId, list[tuple[OrderedDocId, float]]]
    num_queries: int
    num_docs: int
    encode_seconds: float
    search_seconds: float


def evaluate_retrieval(
    encoder: TextEmbedder,
    queries: Mapping[QueryId, str],
    corpus: Mapping[OrderedDocId, str],
    qrels: Mapping[QueryId, Mapping[OrderedDocId, int]],
    *,
    k_values: Sequence[int] = (1, 10, 100),
    batch_size: int = 64,
    query_prompt_name: str | None = None,
    doc_prompt_name: str | None = None,
    doc_encoder: TextEmbedder | None = None,
) -> RetrievalResult[QueryId, OrderedDocId]:
    """Encode, search exactly by cosine, and score with trec_eval definitions (see the module docstring).

    Args:
        encoder: any :class:`Encoder`; its ``encode`` is called once for the
            queries and once for the corpus.
        queries: query id -> text. Only queries with a relevant document
            (grade > 0) in ``qrels`` are encoded and evaluated.
        corpus: document id -> text; ids must be mutually orderable (strings).
        qrels: query id -> {document id: grade}; every relevant document of an
            evaluated query must be in ``corpus``.
        k_values: cut-offs; the search returns the top ``max(k_values)``.
        batch_size: encoding batch size.
        query_prompt_name, doc_prompt_name: names in ``encoder.prompts``.
        doc_encoder: encodes the corpus instead of ``encoder`` (a dual
            encoder's candidate tower; ``encoder`` is then its query tower).

    Raises:
        ValueError: empty corpus, no evaluable query, bad ``k_values``, a
            relevant document missing from the corpus, or non-finite embeddings.
    """
    k_values = tuple(k_values)
    if not k_values or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in k_values):
        raise ValueError(f"k_values must be positive integers, got {k_values!r}")
    if not corpus:
        raise ValueError("the corpus is empty")
    qids = [qid for qid in queries if any(g > 0 for g in qrels.get(qid, {}).values())]
    if not qids:
        raise ValueError("no query has a relevant document (grade > 0) in the qrels")
    _check_relevant_in_corpus(qids, qrels, corpus)
    doc_ids = sorted(corpus)

    start = time.perf_counter()
    q_emb = encoder.encode([queries[q] for q in qids], batch_size=batch_size, prompt_name=query_prompt_name)
    d_encoder = encoder if doc_encoder is None else doc_encoder
    d_emb = d_encoder.encode([corpus[d] for d in doc_ids], batch_size=batch_size, prompt_name=doc_prompt_name)
    encoded = time.perf_counter()
    for name, emb in (("query", q_emb), ("document", d_emb)):
        if not torch.isfinite(emb).all():
            raise ValueError(f"the encoder returned non-finite {name} embeddings")

    scores, index = search(F.normalize(q_emb.float(), dim=-1), F.normalize(d_emb.float(), dim=-1), top_k=max(k_values))
    rankings = {
        qid: [(doc_ids[j], s) for j, s in zip(row_index, row_scores, strict=True)]
        for qid, row_index, row_scores in zip(qids, index.tolist(), scores.tolist(), strict=True)
    }
    per_query = per_query_metrics({q: [d for d, _ in r] for q, r in rankings.items()}, qrels, k_values=k_values)
    return RetrievalResult(
        metrics=mean_metrics(per_query),
        per_query=per_query,
        rankings=rankings,
        num_queries=len(qids),
        num_docs=len(doc_ids),
        encode_seconds=encoded - start,
        search_seconds=time.perf_counter() - encoded,
    )


@torch.no_grad()
def search(
    queries: Tensor,
    docs: Tensor,
    *,
    top_k: int,
    query_block: int = 256,
    doc_block: int = 8192,
) -> tuple[Tensor, Tensor]:
    """Exact top-k documents by dot product, computed in blocks.

    Args:
        queries: (Q, d) embeddings (l2-normalised for cosine).
        docs: (D, d) embeddings.
        top_k: how many documents per query; ``min(top_k, D)`` are returned.
        query_block, doc_block: block sizes; memory is O(query_block x (doc_block + top_k)).

    Returns:
        ``(scores, index)``, both (Q, min(top_k, D)): scores decreasing along
        each row, ties in increasing document index. Identical to a stable
        descending sort of the full (Q, D) score matrix, cut at ``top_k``.
    """
    if top_k < 1 or query_block < 1 or doc_block < 1:
        raise ValueError(f"top_k, query_block and doc_block must be >= 1, got {top_k}, {query_block}, {doc_block}")
    if queries.shape[-1] != docs.shape[-1]:
        raise ValueError(f"queries have dim {queries.shape[-1]}, docs have dim {docs.shape[-1]}")
    k = min(top_k, docs.shape[0])
    all_scores, all_index = [], []
    for q_start in range(0, queries.shape[0], query_block):
        q = queries[q_start : q_start + query_block]
        best_scores = q.new_empty(q.shape[0], 0)
        best_index = torch.empty(q.shape[0], 0, dtype=torch.long, device=q.device)
        for d_start in range(0, docs.shape[0], doc_block):
            block = q @ docs[d_start : d_start + doc_block].T
            block_scores, block_index = _top(block, k)
            # the running best all have lower indices than this block: a stable sort keeps them first on ties
            merged_scores = torch.cat([best_scores, block_scores], dim=1)
            merged_index = torch.cat([best_index, block_index + d_start], dim=1)
            best_scores, order = _top(merged_scores, k)
            best_index = merged_index.gather(1, order)
        all_scores.append(best_scores)
        all_index.append(best_index)
    if not all_scores:
        return queries.new_empty(0, k), torch.empty(0, k, dtype=torch.long)
    return torch.cat(all_scores), torch.cat(all_index)


def _top(scores: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The k largest entries per row and their columns; ties keep column order (stable sort)."""
    values, index = torch.sort(scores, dim=1, descending=True, stable=True)
    return values[:, :k], index[:, :k]


def _check_relevant_in_corpus(
    qids: Sequence[QueryId], qrels: Mapping[QueryId, Mapping[OrderedDocId, int]], corpus: Mapping[OrderedDocId, str]
) -> None:
    missing = [(q, d) for q in qids for d, g in qrels[q].items() if g > 0 and d not in corpus]
    if missing:
        shown = ", ".join(f"{d!r} (query {q!r})" for q, d in missing[:5])
        raise ValueError(f"{len(missing)} relevant document(s) of the qrels are not in the corpus: {shown}")
