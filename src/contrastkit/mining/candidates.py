"""Candidate generation for hard-negative mining: BM25, dense (exact or faiss), hybrid, optional rescoring.

Every generator returns :class:`Candidates`: per query, the ``depth`` best
corpus indices and their scores, best first. Rows shorter than ``depth``
(a corpus smaller than the depth, or BM25 finding fewer matching documents)
are padded with index ``-1`` and score ``-inf``, which every filter treats as
ineligible. Positive scores (the score each query gives its known positives,
in the same scale) come from :func:`bm25_positive_scores` /
:func:`dense_positive_scores`, so the margin filters compare like with like.

- :class:`~contrastkit.evaluation.lexical.BM25Index`: ``bm25s`` (Lucene BM25, English stopwords), optional
  (it lives in evaluation, where reranking's first stage uses it too).
- :func:`dense_candidates`: exact search, by torch blocks
  (:func:`contrastkit.evaluation.retrieval.search`, ties by lower index) or a
  faiss ``IndexFlatIP``; ``index="hnsw"`` / ``"ivf"`` builds an approximate
  faiss index for corpora beyond a million documents (``"auto"`` picks flat up
  to :data:`EXACT_LIMIT`, HNSW beyond).
- :func:`hybrid_candidates`: reciprocal rank fusion or min-max score mixing of two candidate sets.
- :func:`rescore`: replace the scores by a user scorer (e.g. a cross-encoder) and re-sort.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from contrastkit.evaluation.lexical import BM25Index, Candidates, pad

EXACT_LIMIT = 1_000_000
IndexKind = Literal["auto", "torch", "flat", "hnsw", "ivf"]
PairScorer = Callable[[list[tuple[str, str]]], Sequence[float]]


def bm25_positive_scores(index: BM25Index, queries: Sequence[str], positives: Sequence[Sequence[int]]) -> list[Tensor]:
    """Per query, the BM25 scores of its positive documents."""
    out = []
    for query, pos in zip(queries, positives, strict=True):
        full = index.scores(query) if pos else np.zeros(0, dtype=np.float32)
        out.append(torch.as_tensor(full[list(pos)], dtype=torch.float32))
    return out


def dense_candidates(query_emb: Tensor, doc_emb: Tensor, depth: int, *, index: IndexKind = "auto") -> Candidates:
    """Top ``depth`` documents by dot product (pass l2-normalised embeddings for cosine).

    ``index``: ``"torch"`` exact blocks; ``"flat"`` exact faiss; ``"hnsw"`` /
    ``"ivf"`` approximate faiss; ``"auto"``: exact (faiss flat when installed,
    else torch) up to :data:`EXACT_LIMIT` documents, HNSW beyond.
    """
    if index == "auto":
        index = "hnsw" if doc_emb.shape[0] > EXACT_LIMIT else ("flat" if _has_faiss() else "torch")
    k = min(depth, doc_emb.shape[0])
    if index == "torch":
        from contrastkit.evaluation.retrieval import search

        scores, found = search(query_emb.float(), doc_emb.float(), top_k=max(k, 1))
        return pad(found[:, :k], scores[:, :k], depth)
    faiss_index = build_faiss_index(doc_emb, index)
    scores, found = faiss_index.search(np.ascontiguousarray(query_emb.float().numpy()), k)
    return pad(found, scores, depth)


def build_faiss_index(doc_emb: Tensor, kind: str = "flat") -> Any:
    """A faiss inner-product index over ``doc_emb``: ``flat`` (exact), ``hnsw`` (M=32) or ``ivf`` (sqrt(D) lists)."""
    try:
        import faiss
    except ImportError:
        raise ImportError("faiss search needs faiss: pip install 'contrastkit[mining]', or index='torch'") from None
    data = np.ascontiguousarray(doc_emb.float().numpy())
    dim = data.shape[1]
    faiss_index: faiss.Index
    if kind == "flat":
        faiss_index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        faiss_index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
    elif kind == "ivf":
        lists = max(1, int(len(data) ** 0.5))
        ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dim), dim, lists, faiss.METRIC_INNER_PRODUCT)
        ivf.train(data)
        ivf.nprobe = max(1, lists // 8)
        faiss_index = ivf
    else:
        raise ValueError(f"unknown index {kind!r}; expected torch, flat, hnsw, ivf or auto")
    faiss_index.add(data)
    return faiss_index


def dense_positive_scores(query_emb: Tensor, doc_emb: Tensor, positives: Sequence[Sequence[int]]) -> list[Tensor]:
    """Per query, the dot products with its positive documents."""
    return [doc_emb[list(pos)].float() @ query_emb[i].float() for i, pos in enumerate(positives)]


def _has_faiss() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def hybrid_candidates(
    first: Candidates,
    second: Candidates,
    *,
    fusion: Literal["rrf", "mix"] = "rrf",
    weight: float = 0.5,
    rrf_k: int = 60,
    first_positive: Sequence[Tensor] | None = None,
    second_positive: Sequence[Tensor] | None = None,
) -> tuple[Candidates, list[Tensor] | None]:
    """Fuse two candidate sets over the same corpus; returns the fused candidates and positive scores.

    ``rrf``: score = ``weight/(rrf_k + r1) + (1-weight)/(rrf_k + r2)`` with 1-based
    ranks (a document missing from a list gets no term). ``mix``: per query,
    each list's scores are min-max scaled to [0, 1] over its returned
    candidates (missing -> 0) and mixed ``weight*s1 + (1-weight)*s2``. Positive
    scores, when both lists' are given, go through the same map: for ``rrf`` a
    positive's rank in a list is 1 + the number of candidates scoring above it
    (no term when it scores below every returned candidate), for ``mix`` its
    raw score is scaled with the same per-query min and max.
    """
    if first.index.shape[0] != second.index.shape[0]:
        raise ValueError("both candidate sets must have the same queries")
    if fusion not in ("rrf", "mix"):
        raise ValueError(f"unknown fusion {fusion!r}; expected rrf or mix")
    depth = first.index.shape[1] + second.index.shape[1]
    with_pos = first_positive is not None and second_positive is not None
    rows, scores, pos_out = [], [], []
    for q in range(first.index.shape[0]):
        fused: dict[int, float] = {}
        pos_value = torch.zeros((), dtype=torch.float32)
        for w, cands, positive in ((weight, first, first_positive), (1 - weight, second, second_positive)):
            valid = cands.index[q] >= 0
            docs, raw = cands.index[q][valid].tolist(), cands.scores[q][valid]
            for doc, term in zip(docs, _terms(raw, raw, fusion, rrf_k).tolist(), strict=True):
                fused[doc] = fused.get(doc, 0.0) + w * term
            if positive is not None and with_pos:
                pos_value = pos_value + w * _terms(positive[q].float(), raw, fusion, rrf_k)
        ranked = sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))
        rows.append([d for d, _ in ranked] + [-1] * (depth - len(ranked)))
        scores.append([s for _, s in ranked] + [float("-inf")] * (depth - len(ranked)))
        if with_pos:
            pos_out.append(torch.as_tensor(pos_value, dtype=torch.float32))
    fused_c = Candidates(torch.tensor(rows, dtype=torch.long), torch.tensor(scores, dtype=torch.float32))
    return fused_c, (pos_out if with_pos else None)


def _terms(values: Tensor, raw: Tensor, fusion: str, rrf_k: int) -> Tensor:
    """Fused terms of raw ``values`` against one query's returned raw scores ``raw`` (best first)."""
    if raw.numel() == 0:
        return torch.zeros_like(values)
    if fusion == "rrf":
        rank = (raw.unsqueeze(0) > values.unsqueeze(1)).sum(1) + 1
        return torch.where(values >= raw.min(), 1.0 / (rrf_k + rank).float(), torch.zeros_like(values))
    lo, hi = raw.min(), raw.max()
    return (values - lo) / (hi - lo if hi > lo else 1.0)


def rescore(
    candidates: Candidates,
    queries: Sequence[str],
    corpus: Sequence[str],
    scorer: PairScorer | Any,
    *,
    positives: Sequence[Sequence[int]] | None = None,
) -> tuple[Candidates, list[Tensor] | None]:
    """Scores from ``scorer`` (a callable on (query, doc) pairs, or an object with ``predict``, e.g. a
    sentence-transformers ``CrossEncoder``), candidates re-sorted per query; positives rescored too when given."""
    predict = scorer.predict if hasattr(scorer, "predict") else scorer
    index, scores = candidates.index.clone(), torch.full_like(candidates.scores, float("-inf"))
    pos_out: list[Tensor] = []
    for q, query in enumerate(queries):
        cols = (index[q] >= 0).nonzero().flatten().tolist()
        pairs = [(query, corpus[int(index[q, c])]) for c in cols]
        if positives is not None:
            pairs += [(query, corpus[d]) for d in positives[q]]
        values = torch.as_tensor(np.asarray(predict(pairs) if pairs else [], dtype=np.float32))
        scores[q, cols] = values[: len(cols)]
        pos_out.append(values[len(cols) :])
        order = torch.sort(scores[q], descending=True, stable=True).indices
        index[q], scores[q] = index[q][order], scores[q][order]
    return Candidates(index, scores), (pos_out if positives is not None else None)
