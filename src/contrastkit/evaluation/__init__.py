"""Evaluation: tasks (STS, retrieval, reasoning, classification, clustering, pair classification),
pure metric functions (trec_eval definitions for retrieval), an embedding cache and reports.

``contrastkit eval MODEL --task TYPE --data PATH`` runs one task; :func:`run_task` is the same from Python.
"""

from contrastkit.evaluation.cache import CachedEncoder, EmbeddingCache, default_cache, encode_cached, model_fingerprint
from contrastkit.evaluation.classification import ClassificationResult, evaluate_classification
from contrastkit.evaluation.clustering import ClusteringResult, evaluate_clustering, v_measure
from contrastkit.evaluation.datafiles import read_labelled, read_pairs
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
from contrastkit.evaluation.mteb import MTEBEncoder
from contrastkit.evaluation.pair_classification import PairClassificationResult, evaluate_pair_classification
from contrastkit.evaluation.reasoning import (
    RARB_INSTRUCTIONS,
    MultipleChoiceItem,
    MultipleChoiceResult,
    ReasoningResult,
    evaluate_multiple_choice,
    instruction_for,
    load_multiple_choice,
    run_reasoning,
    with_instruction,
)
from contrastkit.evaluation.report import load_results, write_report, write_results
from contrastkit.evaluation.retrieval import RetrievalResult, evaluate_retrieval, search
from contrastkit.evaluation.sts import StsData, StsResult, evaluate_sts, pearson, read_sts, spearman
from contrastkit.evaluation.tasks import (
    EvalOptions,
    TaskResult,
    TaskSpec,
    get_task,
    load_task_data,
    register_task,
    run_task,
    task_names,
)

__all__ = [
    "RARB_INSTRUCTIONS",
    "CachedEncoder",
    "ClassificationResult",
    "ClusteringResult",
    "EmbeddingCache",
    "EvalOptions",
    "MTEBEncoder",
    "MultipleChoiceItem",
    "MultipleChoiceResult",
    "PairClassificationResult",
    "ReasoningResult",
    "RetrievalResult",
    "StsData",
    "StsResult",
    "TaskResult",
    "TaskSpec",
    "average_precision",
    "default_cache",
    "encode_cached",
    "evaluate_classification",
    "evaluate_clustering",
    "evaluate_multiple_choice",
    "evaluate_pair_classification",
    "evaluate_retrieval",
    "evaluate_sts",
    "get_task",
    "instruction_for",
    "load_multiple_choice",
    "load_results",
    "load_task_data",
    "mean_metrics",
    "model_fingerprint",
    "mrr_at_k",
    "ndcg_at_k",
    "pearson",
    "per_query_metrics",
    "query_metrics",
    "rank_by_score",
    "read_labelled",
    "read_pairs",
    "read_sts",
    "recall_at_k",
    "register_task",
    "run_reasoning",
    "run_task",
    "search",
    "spearman",
    "task_names",
    "v_measure",
    "with_instruction",
    "write_report",
    "write_results",
]
