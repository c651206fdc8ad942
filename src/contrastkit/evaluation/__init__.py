"""Evaluation: pure retrieval metrics (trec_eval definitions) and retrieval evaluation of any encoder."""

from contrastkit.evaluation.metrics import (
    average_precision,
    mean_metrics,
    mrr_at_k,
    ndcg_at_k,
    per_query_metrics,
    query_metrics,
    rank_by_score,
    recall_at_k,
)
from contrastkit.evaluation.retrieval import RetrievalResult, evaluate_retrieval, search

__all__ = [
    "RetrievalResult",
    "average_precision",
    "evaluate_retrieval",
    "mean_metrics",
    "mrr_at_k",
    "ndcg_at_k",
    "per_query_metrics",
    "query_metrics",
    "rank_by_score",
    "recall_at_k",
    "search",
]
