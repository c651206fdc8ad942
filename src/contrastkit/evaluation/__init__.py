"""Evaluation: tasks (STS, retrieval, reasoning, classification, clustering, pair classification),
image and perception tasks (MIEB protocols: visual STS, linear probe, zero-shot, clustering, any2any
retrieval, compositionality; :mod:`~contrastkit.evaluation.image` and siblings), pure metric functions
(trec_eval definitions for retrieval), an embedding cache and reports.

``contrastkit eval MODEL --task TYPE --data PATH`` runs one task; :func:`run_task` is the same from Python.
"""

from contrastkit.evaluation.cache import CachedEncoder, EmbeddingCache, encode_cached, model_fingerprint
from contrastkit.evaluation.classification import ClassificationResult, evaluate_classification
from contrastkit.evaluation.clustering import ClusteringResult, evaluate_clustering, v_measure
from contrastkit.evaluation.datafiles import read_labelled, read_pairs
from contrastkit.evaluation.image import (
    ImageClassificationResult,
    ImageClusteringResult,
    classify_embeddings,
    cluster_accuracy,
    cluster_embeddings,
    encode_items,
    evaluate_image_classification,
    evaluate_image_clustering,
    sample_n_shot,
)
from contrastkit.evaluation.image_retrieval import (
    compositionality_metrics,
    compositionality_scores,
    evaluate_any2any,
    evaluate_compositionality,
    evaluate_document_retrieval,
    image_text_recall,
    multiple_choice_accuracy,
    render_pages,
)
from contrastkit.evaluation.image_sts import VisualStsResult, render_pairs, visual_sts, visual_sts_images
from contrastkit.evaluation.image_tasks import (
    DIGIT_NAMES,
    VISUAL_STS_SETS,
    ImageDataset,
    evaluate_image_dataset,
    load_image_dataset,
    rendered_beir_pages,
    stratified_split,
    visual_sts_suite,
)
from contrastkit.evaluation.image_zero_shot import ZeroShotResult, class_embeddings, evaluate_zero_shot
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
from contrastkit.evaluation.mieb import MIEB_CATEGORIES, Category, aggregate, task_result
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
    "DIGIT_NAMES",
    "MIEB_CATEGORIES",
    "RARB_INSTRUCTIONS",
    "VISUAL_STS_SETS",
    "CachedEncoder",
    "Category",
    "ClassificationResult",
    "ClusteringResult",
    "EmbeddingCache",
    "EvalOptions",
    "ImageClassificationResult",
    "ImageClusteringResult",
    "ImageDataset",
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
    "VisualStsResult",
    "ZeroShotResult",
    "aggregate",
    "average_precision",
    "class_embeddings",
    "classify_embeddings",
    "cluster_accuracy",
    "cluster_embeddings",
    "compositionality_metrics",
    "compositionality_scores",
    "encode_cached",
    "encode_items",
    "evaluate_any2any",
    "evaluate_classification",
    "evaluate_clustering",
    "evaluate_compositionality",
    "evaluate_document_retrieval",
    "evaluate_image_classification",
    "evaluate_image_clustering",
    "evaluate_image_dataset",
    "evaluate_multiple_choice",
    "evaluate_pair_classification",
    "evaluate_retrieval",
    "evaluate_sts",
    "evaluate_zero_shot",
    "get_task",
    "image_text_recall",
    "instruction_for",
    "load_image_dataset",
    "load_multiple_choice",
    "load_results",
    "load_task_data",
    "mean_metrics",
    "model_fingerprint",
    "mrr_at_k",
    "multiple_choice_accuracy",
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
    "render_pages",
    "render_pairs",
    "rendered_beir_pages",
    "run_reasoning",
    "run_task",
    "sample_n_shot",
    "search",
    "spearman",
    "stratified_split",
    "task_names",
    "task_result",
    "v_measure",
    "visual_sts",
    "visual_sts_images",
    "visual_sts_suite",
    "with_instruction",
    "write_report",
    "write_results",
]
