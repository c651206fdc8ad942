"""Reranking: a cross-encoder re-scores the top-k documents of a first stage; metrics before and after.

A *first stage* gives, per query, a ranked list of ``(doc_id, score)``:

* :func:`bm25_rankings`: BM25 (``bm25s``, the index of :mod:`contrastkit.mining`);
* :func:`dense_rankings`: a bi-encoder's exact cosine search
  (:func:`~contrastkit.evaluation.retrieval.evaluate_retrieval`'s rankings);
* :func:`read_trec_run`: a saved TREC run file (``qid Q0 docid rank score tag``,
  whitespace-separated; :func:`write_trec_run` writes one).

:func:`rerank` scores each query's top ``top_k`` (query, document) pairs with
a :class:`~contrastkit.encoders.cross.CrossEncoderModel` and sorts them by the
cross-encoder's score (ties by document id), optionally interpolated with the
first stage: ``alpha * minmax(ce) + (1 - alpha) * minmax(first)``, each
min-max normalised within the query's list (``alpha = 1``: the cross-encoder
alone). Documents below ``top_k`` are dropped, so recall@k is bounded by the
first stage's recall@top_k.

:func:`evaluate_rerank` reports both sides with the trec_eval definitions of
:mod:`contrastkit.evaluation.metrics` over the queries that have a relevant
document: ``first_stage/<metric>`` (the first stage cut at ``top_k``) and
``<metric>`` after reranking, for nDCG@k, MRR@k and recall@k at each cut-off
(default 1, 10, ``top_k``) and MAP. :class:`TwoStage` is the same pipeline as
an object: ``TwoStage(bi_encoder, cross_encoder, top_k=100).search(queries, corpus)``.

Example::

    first = dense_rankings(load_encoder("all-MiniLM-L6-v2"), data.queries, data.corpus, data.qrels, top_k=100)
    result = evaluate_rerank(load_cross_encoder("runs/reranker/final"), data.queries, data.corpus,
                             data.qrels, first, top_k=100)
    result.metrics["first_stage/ndcg@10"], result.metrics["ndcg@10"]
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from contrastkit.data.errors import DataError
from contrastkit.evaluation.lexical import BM25Index
from contrastkit.evaluation.metrics import mean_metrics, per_query_metrics

if TYPE_CHECKING:
    from contrastkit.encoders.base import Encoder, TextEmbedder
    from contrastkit.encoders.cross import CrossEncoderModel

Ranking = list[tuple[str, float]]
"""One query's documents with their scores, best first."""
Rankings = dict[str, Ranking]


@dataclass(frozen=True)
class RerankResult:
    """What :func:`evaluate_rerank` measured.

    Attributes:
        metrics: ``first_stage/<metric>`` and ``<metric>`` (after reranking), means over evaluated queries.
        rankings: per evaluated query, its reranked top ``top_k`` ``(doc_id, score)``, best first.
        num_queries: queries evaluated (a relevant document in the qrels and a first-stage list).
        pairs_scored: (query, document) pairs the cross-encoder scored.
        score_seconds: time spent scoring them.
    """

    metrics: dict[str, float]
    rankings: Rankings
    num_queries: int
    pairs_scored: int
    score_seconds: float


def read_trec_run(path: str | Path) -> Rankings:
    """A TREC run file as rankings sorted by decreasing score (ties by document id); DataError naming the line."""
    path = Path(path)
    if not path.is_file():
        raise DataError("run file not found", path=path)
    runs: dict[str, dict[str, float]] = {}
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            fields = line.split()
            if len(fields) != 6:
                raise DataError(f"expected 6 fields 'qid Q0 docid rank score tag', got {len(fields)}", path=path,
                                line=number)  # fmt: skip
            qid, _, doc, _, score, _ = fields
            try:
                value = float(score)
            except ValueError:
                raise DataError(f"score {score!r} is not a number", path=path, line=number) from None
            if not math.isfinite(value):
                raise DataError(f"score {score!r} is not finite", path=path, line=number)
            if doc in runs.setdefault(qid, {}):
                raise DataError(f"document {doc!r} appears twice for query {qid!r}", path=path, line=number)
            runs[qid][doc] = value
    if not runs:
        raise DataError("the run file has no entries", path=path)
    return {qid: sorted(docs.items(), key=lambda item: (-item[1], item[0])) for qid, docs in runs.items()}


def write_trec_run(path: str | Path, rankings: Mapping[str, Ranking], tag: str = "contrastkit") -> Path:
    """Write ``rankings`` as a TREC run file (rank from 1, best first); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        f"{qid} Q0 {doc} {rank} {score:.6f} {tag}\n"
        for qid, ranking in rankings.items()
        for rank, (doc, score) in enumerate(ranking, start=1)
    ]
    path.write_text("".join(lines), encoding="utf-8")
    return path


def bm25_rankings(queries: Mapping[str, str], corpus: Mapping[str, str], *, top_k: int = 100) -> Rankings:
    """BM25's top ``top_k`` documents per query (documents sharing no term are left out)."""
    qids, doc_ids = list(queries), list(corpus)
    found = BM25Index([corpus[d] for d in doc_ids]).search([queries[q] for q in qids], top_k)
    return {
        qid: [(doc_ids[j], s) for j, s in zip(row, scores, strict=True) if j >= 0]
        for qid, row, scores in zip(qids, found.index.tolist(), found.scores.tolist(), strict=True)
    }


def dense_rankings(
    encoder: TextEmbedder,
    queries: Mapping[str, str],
    corpus: Mapping[str, str],
    *,
    top_k: int = 100,
    batch_size: int = 64,
    query_prompt_name: str | None = None,
    doc_prompt_name: str | None = None,
) -> Rankings:
    """A bi-encoder's exact cosine top ``top_k`` for every query (ties by document id, as in retrieval)."""
    import torch.nn.functional as F

    from contrastkit.evaluation.retrieval import search

    doc_ids, qids = sorted(corpus), list(queries)
    q = encoder.encode([queries[i] for i in qids], batch_size=batch_size, prompt_name=query_prompt_name)
    d = encoder.encode([corpus[i] for i in doc_ids], batch_size=batch_size, prompt_name=doc_prompt_name)
    scores, index = search(F.normalize(q.float(), dim=-1), F.normalize(d.float(), dim=-1), top_k=top_k)
    return {
        qid: [(doc_ids[j], s) for j, s in zip(row, row_scores, strict=True)]
        for qid, row, row_scores in zip(qids, index.tolist(), scores.tolist(), strict=True)
    }


def rerank(
    cross_encoder: CrossEncoderModel,
    queries: Mapping[str, str],
    corpus: Mapping[str, str],
    first_stage: Mapping[str, Ranking],
    *,
    top_k: int = 100,
    batch_size: int = 32,
    alpha: float = 1.0,
) -> Rankings:
    """Each query's first ``top_k`` documents re-sorted by the cross-encoder (``alpha``: see the module docstring).

    Queries missing from ``queries`` and documents missing from ``corpus`` are a ValueError naming them.
    """
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    cut = {qid: list(ranking[:top_k]) for qid, ranking in first_stage.items()}
    _check_ids(cut, queries, corpus)
    pairs = [(queries[qid], corpus[doc]) for qid, ranking in cut.items() for doc, _ in ranking]
    scores = cross_encoder.score(pairs, batch_size=batch_size).tolist() if pairs else []
    out, start = {}, 0
    for qid, ranking in cut.items():
        ce = scores[start : start + len(ranking)]
        start += len(ranking)
        if alpha < 1.0:
            ce = [
                alpha * a + (1 - alpha) * b for a, b in zip(_minmax(ce), _minmax([s for _, s in ranking]), strict=True)
            ]
        docs = [doc for doc, _ in ranking]
        out[qid] = sorted(zip(docs, ce, strict=True), key=lambda item: (-item[1], item[0]))
    return out


def evaluate_rerank(
    cross_encoder: CrossEncoderModel,
    queries: Mapping[str, str],
    corpus: Mapping[str, str],
    qrels: Mapping[str, Mapping[str, int]],
    first_stage: Mapping[str, Ranking],
    *,
    top_k: int = 100,
    k_values: Sequence[int] | None = None,
    batch_size: int = 32,
    alpha: float = 1.0,
) -> RerankResult:
    """Rerank the first stage's top ``top_k`` of every query with a relevant document; metrics before and after."""
    k_values = tuple(k_values or sorted({1, 10, top_k}))
    evaluated = {
        qid: ranking
        for qid, ranking in first_stage.items()
        if any(g > 0 for g in qrels.get(qid, {}).values())
    }  # fmt: skip
    if not evaluated:
        raise ValueError("no first-stage query has a relevant document in the qrels")
    start = time.perf_counter()
    reranked = rerank(cross_encoder, queries, corpus, evaluated, top_k=top_k, batch_size=batch_size, alpha=alpha)
    seconds = time.perf_counter() - start
    before = _metrics({q: r[:top_k] for q, r in evaluated.items()}, qrels, k_values)
    after = _metrics(reranked, qrels, k_values)
    metrics = {**after, **{f"first_stage/{name}": value for name, value in before.items()}}
    pairs = sum(len(r) for r in reranked.values())
    return RerankResult(metrics, reranked, len(reranked), pairs, seconds)


class TwoStage:
    """Retrieve with a bi-encoder, rerank with a cross-encoder.

    Args:
        retriever: a bi-encoder (:class:`~contrastkit.encoders.base.Encoder`).
        reranker: a :class:`~contrastkit.encoders.cross.CrossEncoderModel`.
        top_k: documents retrieved and reranked per query.
        alpha: score interpolation (1: the cross-encoder alone).
    """

    def __init__(self, retriever: Encoder, reranker: CrossEncoderModel, *, top_k: int = 100, alpha: float = 1.0):
        self.retriever, self.reranker, self.top_k, self.alpha = retriever, reranker, top_k, alpha

    def search(self, queries: Mapping[str, str], corpus: Mapping[str, str], *, batch_size: int = 32) -> Rankings:
        """Per query, the reranked top ``top_k`` ``(doc_id, score)``, best first."""
        first = dense_rankings(self.retriever, queries, corpus, top_k=self.top_k, batch_size=batch_size)
        return rerank(self.reranker, queries, corpus, first, top_k=self.top_k, batch_size=batch_size, alpha=self.alpha)


def _metrics(
    rankings: Mapping[str, Ranking], qrels: Mapping[str, Mapping[str, int]], k_values: Sequence[int]
) -> dict[str, float]:
    per_query = per_query_metrics({q: [d for d, _ in r] for q, r in rankings.items()}, qrels, k_values=k_values)
    return mean_metrics(per_query)


def _minmax(values: Sequence[float]) -> list[float]:
    lo, hi = min(values, default=0.0), max(values, default=0.0)
    return [0.0 if hi == lo else (v - lo) / (hi - lo) for v in values]


def _check_ids(rankings: Mapping[str, Ranking], queries: Mapping[str, str], corpus: Mapping[str, str]) -> None:
    missing_q = [q for q in rankings if q not in queries]
    if missing_q:
        raise ValueError(f"{len(missing_q)} first-stage query id(s) are not in the queries: {missing_q[:5]}")
    missing_d = [(q, d) for q, r in rankings.items() for d, _ in r if d not in corpus]
    if missing_d:
        shown = ", ".join(f"{d!r} (query {q!r})" for q, d in missing_d[:5])
        raise ValueError(f"{len(missing_d)} first-stage document id(s) are not in the corpus: {shown}")


__all__ = [
    "RerankResult",
    "TwoStage",
    "bm25_rankings",
    "dense_rankings",
    "evaluate_rerank",
    "read_trec_run",
    "rerank",
    "write_trec_run",
]
