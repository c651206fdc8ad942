"""Lexical first-stage retrieval: a BM25 index and the padded candidate lists it returns.

Shared by hard-negative mining (:mod:`contrastkit.mining.candidates`) and
reranking's BM25 first stage (:mod:`contrastkit.evaluation.rerank`).
:class:`Candidates` holds, per query, the ``depth`` best corpus indices and
their scores, best first; short rows are padded with index ``-1`` and score
``-inf``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor


@dataclass(frozen=True)
class Candidates:
    """(Q, depth) ``index`` (long, -1 = none) and ``scores`` (float32, -inf where none), best first per row."""

    index: Tensor
    scores: Tensor

    def __post_init__(self) -> None:
        if self.index.shape != self.scores.shape or self.index.dim() != 2:
            raise ValueError(f"index {tuple(self.index.shape)} and scores {tuple(self.scores.shape)} must be equal 2-d")


def pad(index: np.ndarray | Tensor, scores: np.ndarray | Tensor, depth: int) -> Candidates:
    """Candidates from ragged-free (Q, k) arrays, padded to ``depth`` columns with -1 / -inf."""
    index = torch.as_tensor(np.asarray(index), dtype=torch.long)
    scores = torch.as_tensor(np.asarray(scores), dtype=torch.float32)
    index = torch.where(torch.isfinite(scores), index, -1)
    scores = torch.where(index >= 0, scores, float("-inf"))
    missing = depth - index.shape[1]
    if missing > 0:
        index = torch.cat([index, index.new_full((index.shape[0], missing), -1)], dim=1)
        scores = torch.cat([scores, scores.new_full((scores.shape[0], missing), float("-inf"))], dim=1)
    return Candidates(index[:, :depth], scores[:, :depth])


class BM25Index:
    """A ``bm25s`` index over ``corpus`` (lowercased, English stopwords removed, no stemming).

    ``k1``, ``b`` are the Lucene BM25 parameters. Raises ImportError naming the
    package when ``bm25s`` is missing.
    """

    def __init__(self, corpus: Sequence[str], *, k1: float = 1.5, b: float = 0.75) -> None:
        try:
            import bm25s
        except ImportError:
            raise ImportError("BM25 mining needs bm25s: pip install 'contrastkit[mining]'") from None
        self._bm25s = bm25s
        self.size = len(corpus)
        self.retriever = bm25s.BM25(k1=k1, b=b)
        self.retriever.index(self._tokens(corpus), show_progress=False)

    def _tokens(self, texts: Sequence[str]) -> Any:
        return self._bm25s.tokenize(list(texts), stopwords="en", show_progress=False)

    def search(self, queries: Sequence[str], depth: int) -> Candidates:
        """The ``depth`` best documents per query (documents with score 0 are dropped as non-matches)."""
        k = min(depth, self.size)
        if not queries or k == 0:
            return pad(np.zeros((len(queries), 0)), np.zeros((len(queries), 0)), depth)
        tokens = self._bm25s.tokenize(list(queries), stopwords="en", show_progress=False, return_ids=False)
        index, scores = self.retriever.retrieve(tokens, k=k, show_progress=False, n_threads=1)
        scores = np.where(scores > 0, scores, -np.inf)
        return pad(index, scores, depth)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document for one query, shape (corpus size,)."""
        tokens = self._bm25s.tokenize([query], stopwords="en", show_progress=False, return_ids=False)[0]
        return np.asarray(self.retriever.get_scores(tokens), dtype=np.float32)
