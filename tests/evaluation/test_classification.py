"""Classification probes: kNN votes and tie-breaks by hand, macro F1 by hand, separable analytic data scores 1."""

import random
from pathlib import Path

import pytest
import torch
from task_helpers import VectorEncoder, polar, write_jsonl, write_tsv

from contrastkit.data.errors import DataError
from contrastkit.evaluation.cache import EmbeddingCache
from contrastkit.evaluation.classification import (
    accuracy,
    evaluate_classification,
    knn_predict,
    logistic_regression,
    macro_f1,
    undersample,
)
from contrastkit.evaluation.datafiles import read_labelled


def test_accuracy_and_macro_f1_by_hand() -> None:
    gold = ["a", "a", "a", "b", "b", "c"]
    pred = ["a", "a", "b", "b", "c", "c"]
    assert accuracy(gold, pred) == pytest.approx(4 / 6)
    # a: tp 2, fp 0, fn 1 -> 4/5; b: tp 1, fp 1, fn 1 -> 2/4; c: tp 1, fp 1, fn 0 -> 2/3
    assert macro_f1(gold, pred) == pytest.approx((4 / 5 + 2 / 4 + 2 / 3) / 3)
    # a label only predicted (never gold) counts with F1 0, as scikit-learn's macro average
    assert macro_f1([1, 1], [1, 2]) == pytest.approx((2 / 3 + 0) / 2)
    with pytest.raises(ValueError):
        accuracy([], [])


def test_macro_f1_matches_scikit_learn() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    rng = random.Random(1)
    gold = [rng.randrange(5) for _ in range(200)]
    pred = [g if rng.random() < 0.6 else rng.randrange(6) for g in gold]
    assert macro_f1(gold, pred) == pytest.approx(metrics.f1_score(gold, pred, average="macro"), abs=1e-12)


def test_knn_votes_and_tie_breaks() -> None:
    x_train = torch.tensor([polar(0), polar(10), polar(20), polar(90), polar(100)])
    y_train = ["east", "east", "east", "north", "north"]
    x_test = torch.tensor([polar(5, 3.0), polar(95), polar(60)])
    assert knn_predict(x_train, y_train, x_test, k=1) == ["east", "north", "north"]
    # k=3 at 60 degrees: neighbours 90 (north), 20 (east), 100 (north) -> north by 2 votes to 1
    assert knn_predict(x_train, y_train, x_test, k=3) == ["east", "north", "north"]
    # k=2 at 50 degrees: 20 (east, cos 30 deg) and 90 (north, cos 40 deg) tie 1-1: larger similarity wins
    assert knn_predict(x_train, y_train, torch.tensor([polar(50)]), k=2) == ["east"]
    # an exact tie in votes and similarity (45 degrees between 0 and 90) goes to the label seen first
    assert knn_predict(x_train[[0, 3]], ["east", "north"], torch.tensor([polar(45)]), k=2) == ["east"]
    assert knn_predict(x_train[[3, 0]], ["north", "east"], torch.tensor([polar(45)]), k=2) == ["north"]
    # k larger than the training set is clamped
    assert knn_predict(x_train, y_train, x_test, k=50) == ["east"] * 3


def test_logistic_regression_separates_separable_data() -> None:
    gen = torch.Generator().manual_seed(0)
    centres = torch.tensor([[4.0, 0.0, 0.0], [0.0, 4.0, 0.0], [0.0, 0.0, 4.0]])
    labels = [i % 3 for i in range(60)]
    x = centres[labels] + 0.3 * torch.randn(60, 3, generator=gen)
    names = ["x", "y", "z"]
    pred = logistic_regression(x[:45], [names[i] for i in labels[:45]], x[45:])
    assert pred == [names[i] for i in labels[45:]]


def test_undersample_takes_at_most_n_per_label_deterministically() -> None:
    labels = ["a"] * 10 + ["b"] * 3 + ["c"] * 7
    rows = undersample(labels, 4, seed=3)
    counts = {lab: sum(labels[i] == lab for i in rows) for lab in "abc"}
    assert counts == {"a": 4, "b": 3, "c": 4} and len(set(rows)) == len(rows)
    assert rows == undersample(labels, 4, seed=3) and rows != undersample(labels, 4, seed=4)


def _blobs(tmp_path: Path) -> tuple[dict, Path]:
    """Two labels at 0 and 90 degrees (with jitter) plus a third at 200: separable by both probes."""
    rng = random.Random(0)
    table, train, test = {}, [], []
    for i in range(30):
        label, angle = [("pos", 0), ("neg", 90), ("mixed", 200)][i % 3]
        text = f"text {i}"
        table[text] = polar(angle + rng.uniform(-20, 20), rng.uniform(0.5, 2))
        (train if i < 21 else test).append((text, label))
    write_tsv(tmp_path / "train.tsv", ("text", "label"), train)
    write_jsonl(tmp_path / "test.jsonl", [{"text": t, "label": y} for t, y in test])
    return table, tmp_path


def test_evaluate_classification_on_analytic_embeddings(tmp_path) -> None:
    table, folder = _blobs(tmp_path)
    train, test = read_labelled(folder, "train"), read_labelled(folder, "test")
    encoder = VectorEncoder(table)
    result = evaluate_classification(encoder, train, test, k=3, cache=EmbeddingCache())
    assert result.metrics == {"accuracy": 1.0, "f1": 1.0, "knn_accuracy": 1.0, "knn_f1": 1.0}
    assert result.predictions["knn"] == result.gold == test.labels
    assert len(encoder.encode_calls) == 1

    sampled = evaluate_classification(
        encoder, train, test, methods=("knn",), k=1, samples_per_label=2, n_experiments=3, cache=EmbeddingCache()
    )
    assert set(sampled.metrics) == {"knn_accuracy", "knn_f1"} and sampled.metrics["knn_accuracy"] == 1.0


def test_bad_arguments_and_data(tmp_path) -> None:
    table, folder = _blobs(tmp_path)
    train, test = read_labelled(folder, "train"), read_labelled(folder, "test")
    with pytest.raises(ValueError, match="methods"):
        evaluate_classification(VectorEncoder(table), train, test, methods=("svm",))
    with pytest.raises(ValueError, match=">= 1"):
        evaluate_classification(VectorEncoder(table), train, test, k=0)
    write_tsv(tmp_path / "one" / "train.tsv", ("text", "label"), [("text 0", "a"), ("text 1", "a")])
    one = read_labelled(tmp_path / "one", "train")
    with pytest.raises(ValueError, match="a probe needs 2"):
        evaluate_classification(VectorEncoder(table), one, test)
    write_tsv(tmp_path / "bad" / "test.tsv", ("text", "category"), [("text 0", "a")])
    with pytest.raises(DataError, match=r"test.tsv, line 1: missing column 'label'"):
        read_labelled(tmp_path / "bad", "test")
