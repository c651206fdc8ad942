"""MIEB's eight categories and its aggregate score: tasks averaged within a category, then the categories averaged.

:data:`MIEB_CATEGORIES` maps each category (thesis-methods.md section 5) to the
mteb task types it holds, the contrastkit task names whose results belong to
it, and its main metric. :func:`aggregate` takes
:class:`~contrastkit.evaluation.tasks.TaskResult` objects (from ``run_task``,
:func:`contrastkit.evaluation.image_tasks.evaluate_image_dataset`, or
:func:`task_result` around any image evaluator's result) and returns one
``TaskResult`` (task ``"mieb"``) whose metrics are each present category's
mean main score and ``mean``, the mean over the present categories (as
``MIEB(lite)`` is reported). A result's main score is its ``main_score``
metric when it has one (the image evaluators set it; compositionality sets
text_acc, image_acc or accuracy per data set, as MIEB does), else its
category's main metric.

Example::

    >>> r = [task_result("image-classification", "digits", "test", {"main_score": 0.8}),
    ...      task_result("image-classification", "mnist", "test", {"main_score": 0.6}),
    ...      task_result("visual-sts", "stsb", "test", {"spearman": 0.5})]
    >>> aggregate(r).metrics
    {'linear_probe': 0.7, 'visual_sts': 0.5, 'mean': 0.6}
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from contrastkit.evaluation.tasks import TaskResult


@dataclass(frozen=True)
class Category:
    """A MIEB category: its mteb task types, the contrastkit task names scored in it, and its main metric."""

    title: str
    mteb_types: tuple[str, ...]
    tasks: tuple[str, ...]
    main_metric: str


MIEB_CATEGORIES: dict[str, Category] = {
    "retrieval": Category("Retrieval", ("Any2AnyRetrieval", "Any2AnyMultilingualRetrieval"),
                          ("any2any-retrieval",), "ndcg@10"),
    "document_understanding": Category("Document understanding", ("DocumentUnderstanding",),
                                       ("document-retrieval",), "ndcg@5"),
    "linear_probe": Category("Linear probe", ("ImageClassification",), ("image-classification",), "accuracy"),
    "zero_shot": Category("Zero-shot classification", ("ZeroShotClassification",),
                          ("zero-shot-classification",), "accuracy"),
    "clustering": Category("Clustering", ("ImageClustering",), ("image-clustering",), "nmi"),
    "compositionality": Category("Compositionality", ("Compositionality",),
                                 ("compositionality",), "accuracy"),
    "vision_centric_qa": Category("Vision-centric QA", ("VisionCentricQA",), ("vision-qa",), "accuracy"),
    "visual_sts": Category("Visual STS", ("VisualSTS(eng)", "VisualSTS(multi)"), ("visual-sts",), "spearman"),
}  # fmt: skip


def category_of(task: str) -> str:
    """The category key of a contrastkit task name; KeyError listing the known task names."""
    for key, category in MIEB_CATEGORIES.items():
        if task in category.tasks:
            return key
    known = sorted(t for c in MIEB_CATEGORIES.values() for t in c.tasks)
    raise KeyError(f"task {task!r} belongs to no MIEB category; known tasks: {', '.join(known)}")


def main_score(result: TaskResult) -> float:
    """The result's ``main_score`` metric, else its category's main metric (KeyError naming what is missing)."""
    if "main_score" in result.metrics:
        return result.metrics["main_score"]
    metric = MIEB_CATEGORIES[category_of(result.task)].main_metric
    if metric not in result.metrics:
        raise KeyError(f"result {result.task} on {result.data}: no 'main_score' and no {metric!r} metric")
    return result.metrics[metric]


def aggregate(results: Sequence[TaskResult]) -> TaskResult:
    """Category means of the results' main scores and their mean (``details``: per category, the (data, score) list)."""
    if not results:
        raise ValueError("aggregate needs at least one result")
    per_category: dict[str, list[tuple[str, float]]] = {}
    for result in results:
        per_category.setdefault(category_of(result.task), []).append((result.data, main_score(result)))
    ordered = {key: per_category[key] for key in MIEB_CATEGORIES if key in per_category}
    metrics = {key: math.fsum(s for _, s in scores) / len(scores) for key, scores in ordered.items()}
    metrics["mean"] = math.fsum(metrics.values()) / len(metrics)
    return TaskResult("mieb", ", ".join(dict.fromkeys(r.data for r in results)), "all", metrics, details=ordered)


def task_result(task: str, data: str, split: str, result: Any, *, seconds: float = 0.0) -> TaskResult:
    """A :class:`TaskResult` from an evaluator's result (its ``metrics``) or from a metrics mapping."""
    metrics = result if isinstance(result, Mapping) else result.metrics
    bad = {
        k: v
        for k, v in metrics.items()
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
    }
    if bad:
        raise ValueError(f"task {task}: non-finite or non-numeric metrics {bad}")
    details = None if isinstance(result, Mapping) else result
    return TaskResult(task, str(data), split, {str(k): float(v) for k, v in metrics.items()}, details, seconds)
