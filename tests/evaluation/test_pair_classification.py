"""Pair classification: AP with tied scores, best-threshold accuracy and F1 by hand; analytic pairs end to end."""

import random

import pytest
from task_helpers import VectorEncoder, polar, write_tsv

from contrastkit.data.errors import DataError
from contrastkit.evaluation.cache import EmbeddingCache
from contrastkit.evaluation.datafiles import read_pairs
from contrastkit.evaluation.pair_classification import (
    average_precision,
    best_accuracy,
    best_f1,
    evaluate_pair_classification,
)


def test_average_precision_by_hand() -> None:
    # ranking 0.9 (+), 0.8 (-), 0.7 (+), 0.1 (-): precision at the positives 1 and 2/3
    assert average_precision([0.9, 0.8, 0.7, 0.1], [1, 0, 1, 0]) == pytest.approx((1 + 2 / 3) / 2)
    # a tie (0.5) holding one positive and one negative is one threshold: recall jumps 1/2 -> 1 at precision 2/3
    assert average_precision([0.9, 0.5, 0.5, 0.1], [1, 1, 0, 0]) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert average_precision([0.9, 0.5, 0.5, 0.1], [1, 0, 1, 0]) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert average_precision([0.3, 0.3, 0.3], [1, 0, 0]) == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="without a positive"):
        average_precision([0.1, 0.2], [0, 0])


def test_average_precision_matches_scikit_learn_with_ties() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    rng = random.Random(0)
    labels = [rng.randrange(2) for _ in range(300)]
    scores = [round(rng.random() * 0.5 + 0.4 * y, 1) for y in labels]  # one decimal: many ties
    assert average_precision(scores, labels) == pytest.approx(metrics.average_precision_score(labels, scores))


def test_best_thresholds_by_hand() -> None:
    scores, labels = [0.9, 0.8, 0.7, 0.6, 0.2], [1, 0, 1, 1, 0]
    # thresholds: inf -> 2/5 right; 0.9 -> 3/5; 0.8 -> 2/5; 0.7 -> 3/5; 0.6 -> 4/5; 0.2 -> 3/5
    assert best_accuracy(scores, labels) == (pytest.approx(4 / 5), 0.6)
    # F1 at 0.6: tp 3, predicted 4, positives 3 -> 6/7, precision 3/4, recall 1
    f1, precision, recall, threshold = best_f1(scores, labels)
    assert (f1, precision, recall, threshold) == (pytest.approx(6 / 7), 0.75, 1.0, 0.6)
    # all negative is best when positives are rare and scored low
    assert best_accuracy([0.9, 0.1, 0.8], [0, 1, 0]) == (pytest.approx(2 / 3), float("inf"))


def test_evaluate_pair_classification_on_analytic_pairs(tmp_path) -> None:
    table, rows = {}, []
    for i in range(8):
        positive = i % 2 == 0
        table[f"a{i}"] = polar(10 * i)
        table[f"b{i}"] = polar(10 * i + (5 + i if positive else 60 + 5 * i), 2.0)
        rows.append((f"a{i}", f"b{i}", int(positive)))
    write_tsv(tmp_path / "test.tsv", ("sentence1", "sentence2", "label"), rows)
    encoder = VectorEncoder(table)
    result = evaluate_pair_classification(encoder, read_pairs(tmp_path, "test"), cache=EmbeddingCache())
    assert result.metrics == {"ap": 1.0, "accuracy": 1.0, "f1": 1.0, "precision": 1.0, "recall": 1.0}
    assert set(result.metrics) == {"ap", "accuracy", "f1", "precision", "recall"}
    assert result.labels == [1, 0] * 4 and len(encoder.encode_calls) == 1
    assert -1.0 <= result.thresholds["accuracy"] <= 1.0


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        ([("a", "b", 2)], r"test.tsv, row 1: wrong value in column 'label': expected 0 or 1, got 2.0"),
        ([("a", "b", "yes")], r"wrong type in column 'label'"),
        ([("a", "b", 0), ("c", "d", 0)], r"no positive pair"),
    ],
)
def test_bad_pair_files(tmp_path, rows, match) -> None:
    write_tsv(tmp_path / "test.tsv", ("sentence1", "sentence2", "label"), rows)
    with pytest.raises(DataError, match=match):
        read_pairs(tmp_path, "test")


def test_missing_label_column(tmp_path) -> None:
    write_tsv(tmp_path / "test.tsv", ("sentence1", "sentence2", "score"), [("a", "b", 1)])
    with pytest.raises(DataError, match=r"missing column 'label'"):
        read_pairs(tmp_path, "test")
