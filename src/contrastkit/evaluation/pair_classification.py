"""Pair classification: is a sentence pair a positive (paraphrase, duplicate)? Scored by cosine (MTEB-style).

Data: ``<folder>/<split>.{tsv,jsonl,csv}`` with ``sentence1``, ``sentence2``
and ``label`` (1 positive, 0 negative); see
:mod:`contrastkit.evaluation.datafiles`.

Each pair's score is the cosine similarity of its two embeddings. Metrics
(fractions in [0, 1]):

* ``ap``: average precision of the ranking by score, MTEB's main score,
  computed as scikit-learn's ``average_precision_score``: tied scores form one
  threshold, AP = sum over distinct thresholds t (decreasing) of
  (R(t) - R(previous t)) x P(t), with P and R the precision and recall of
  "positive iff score >= t";
* ``accuracy``: the best accuracy of a threshold rule "positive iff score >= t"
  over all t (including "all negative");
* ``f1``, ``precision``, ``recall``: at the threshold with the best F1.

The chosen thresholds are cosine values in [-1, 1]; they are in
:attr:`PairClassificationResult.thresholds`, not in the metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from contrastkit.evaluation.cache import EmbeddingCache, encode_cached
from contrastkit.evaluation.datafiles import LabelledPairs
from contrastkit.evaluation.sts import paired_cosine


@dataclass(frozen=True)
class PairClassificationResult:
    """Metrics, the best-accuracy and best-F1 ``thresholds``, and each pair's ``scores`` with its ``labels``."""

    metrics: dict[str, float]
    thresholds: dict[str, float]
    scores: list[float]
    labels: list[int]


def evaluate_pair_classification(
    encoder: Any,
    data: LabelledPairs,
    *,
    batch_size: int = 64,
    prompt_name: str | None = None,
    cache: EmbeddingCache | None = None,
) -> PairClassificationResult:
    """Cosine of each pair, then AP, best-threshold accuracy and F1 (see the module docstring)."""
    n = len(data)
    emb = encode_cached(
        encoder, [*data.sentences1, *data.sentences2], batch_size=batch_size, prompt_name=prompt_name, cache=cache
    )
    scores = paired_cosine(emb[:n], emb[n:]).tolist()
    acc, acc_threshold = best_accuracy(scores, data.labels)
    f1, precision, recall, f1_threshold = best_f1(scores, data.labels)
    metrics = {
        "ap": average_precision(scores, data.labels),
        "accuracy": acc,
        "f1": f1,
        "precision": precision,
        "recall": recall,
    }
    return PairClassificationResult(metrics, {"accuracy": acc_threshold, "f1": f1_threshold}, scores, list(data.labels))


def _threshold_counts(scores: Sequence[float], labels: Sequence[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct scores (decreasing) and, for each, the positives and all pairs with score >= it."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if s.shape != y.shape or s.ndim != 1 or len(s) == 0:
        raise ValueError(f"scores and labels must be equal-length, non-empty 1-D, got {s.shape} and {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    last_of_tie = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # last index of each block of equal scores
    return s[last_of_tie], np.cumsum(y)[last_of_tie], last_of_tie + 1


def average_precision(scores: Sequence[float], labels: Sequence[int]) -> float:
    """AP with tied scores as one threshold (scikit-learn's definition); ValueError without a positive."""
    _, tp, predicted = _threshold_counts(scores, labels)
    positives = int(np.sum(np.asarray(labels)))
    if positives == 0:
        raise ValueError("average precision is undefined without a positive label")
    recall = tp / positives
    precision = tp / predicted
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def best_accuracy(scores: Sequence[float], labels: Sequence[int]) -> tuple[float, float]:
    """(accuracy, threshold) of the best rule "positive iff score >= threshold"; threshold inf = all negative."""
    thresholds, tp, predicted = _threshold_counts(scores, labels)
    n, positives = len(scores), int(np.sum(np.asarray(labels)))
    negatives_below = (n - predicted) - (positives - tp)  # true negatives: negatives with score < t
    correct = np.r_[n - positives, tp + negatives_below]
    best = int(np.argmax(correct))  # the first maximum: the highest threshold among equals
    return float(correct[best] / n), float(np.r_[np.inf, thresholds][best])


def best_f1(scores: Sequence[float], labels: Sequence[int]) -> tuple[float, float, float, float]:
    """(f1, precision, recall, threshold) at the threshold of best F1 = 2TP / (TP + predicted + positives)."""
    thresholds, tp, predicted = _threshold_counts(scores, labels)
    positives = int(np.sum(np.asarray(labels)))
    if positives == 0:
        return 0.0, 0.0, 0.0, float("inf")
    f1 = 2 * tp / (predicted + positives)
    best = int(np.argmax(f1))
    return float(f1[best]), float(tp[best] / predicted[best]), float(tp[best] / positives), float(thresholds[best])
