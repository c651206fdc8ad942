"""Classification probes on frozen embeddings: logistic regression and k-nearest neighbours (MTEB-style).

Data: a folder with a ``train`` file and an evaluation split file (default
``test``) of labelled texts (``text``, ``label``; see
:mod:`contrastkit.evaluation.datafiles`). Both sides are encoded (cached);
the probes are trained on the train embeddings and scored on the split:

* ``logreg``: multinomial logistic regression (scikit-learn's
  ``LogisticRegression``, L2 with C = 1, lbfgs, ``max_iter`` 100 as in MTEB) on
  the embeddings as the encoder returns them;
* ``knn``: the ``k`` nearest training texts by cosine similarity vote; a tie
  in votes goes to the label with the larger summed similarity, then to the
  label seen first in the training data.

Metrics (fractions in [0, 1]): ``accuracy`` and ``f1`` (macro F1 over the
labels occurring in the gold or predicted labels, as scikit-learn's
``average="macro"``) of the logistic regression, MTEB's main score, and
``knn_accuracy``, ``knn_f1``. With ``samples_per_label`` the train set is
undersampled to that many texts per label (shuffled with ``seed + i`` in
experiment i) and metrics are averaged over ``n_experiments``, as MTEB does;
by default every training text is used once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from contrastkit.evaluation.cache import EmbeddingCache, encode_cached
from contrastkit.evaluation.datafiles import LabelledTexts

METHODS = ("logreg", "knn")


@dataclass(frozen=True)
class ClassificationResult:
    """Metrics, and the predictions of the last experiment per method (``predictions[method]``) with ``gold``."""

    metrics: dict[str, float]
    predictions: dict[str, list[Hashable]]
    gold: list[Hashable]


def evaluate_classification(
    encoder: Any,
    train: LabelledTexts,
    test: LabelledTexts,
    *,
    methods: Sequence[str] = METHODS,
    k: int = 5,
    samples_per_label: int | None = None,
    n_experiments: int = 1,
    max_iter: int = 100,
    seed: int = 0,
    batch_size: int = 64,
    prompt_name: str | None = None,
    cache: EmbeddingCache | None = None,
) -> ClassificationResult:
    """Train the probes on ``train`` embeddings, score them on ``test`` (see the module docstring)."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"methods must be a non-empty subset of {METHODS}, got {tuple(methods)}")
    if k < 1 or n_experiments < 1 or (samples_per_label is not None and samples_per_label < 1):
        got = f"{k}, {n_experiments}, {samples_per_label}"
        raise ValueError(f"k, n_experiments and samples_per_label must be >= 1, got {got}")
    if len(set(train.labels)) < 2:
        raise ValueError(f"{train.path}: the training data has {len(set(train.labels))} label(s); a probe needs 2")
    emb = encode_cached(
        encoder, [*train.texts, *test.texts], batch_size=batch_size, prompt_name=prompt_name, cache=cache
    ).float()
    if not emb.isfinite().all():
        raise ValueError("the encoder returned non-finite embeddings")
    x_train, x_test = emb[: len(train)], emb[len(train) :]
    sums: dict[str, float] = {}
    predictions: dict[str, list[Hashable]] = {}
    for i in range(n_experiments):
        rows = undersample(train.labels, samples_per_label, seed=seed + i) if samples_per_label else range(len(train))
        rows = list(rows)
        labels = [train.labels[r] for r in rows]
        for method in methods:
            if method == "logreg":
                pred = logistic_regression(x_train[rows], labels, x_test, max_iter=max_iter, seed=seed + i)
            else:
                pred = knn_predict(x_train[rows], labels, x_test, k=k)
            prefix = "" if method == "logreg" else "knn_"
            for name, value in (("accuracy", accuracy(test.labels, pred)), ("f1", macro_f1(test.labels, pred))):
                sums[prefix + name] = sums.get(prefix + name, 0.0) + value
            predictions[method] = pred
    metrics = {name: value / n_experiments for name, value in sums.items()}
    return ClassificationResult(metrics, predictions, list(test.labels))


def undersample(labels: Sequence[Hashable], per_label: int, *, seed: int) -> list[int]:
    """Indices of at most ``per_label`` rows per label, from a seeded shuffle, in shuffled order."""
    order = np.random.default_rng(seed).permutation(len(labels))
    taken: dict[Hashable, int] = {}
    out = []
    for i in order.tolist():
        if taken.get(labels[i], 0) < per_label:
            taken[labels[i]] = taken.get(labels[i], 0) + 1
            out.append(i)
    return out


def logistic_regression(
    x_train: Tensor, y_train: Sequence[Hashable], x_test: Tensor, *, max_iter: int = 100, seed: int = 0
) -> list[Hashable]:
    """Labels predicted for ``x_test`` by an L2 (C = 1) multinomial logistic regression fitted on the train rows."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    classes = list(dict.fromkeys(y_train))
    index = {c: i for i, c in enumerate(classes)}
    model = LogisticRegression(max_iter=max_iter, random_state=seed)
    with warnings.catch_warnings():  # max_iter is the protocol's budget, as in MTEB
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x_train.double().numpy(), np.array([index[y] for y in y_train]))
    return [classes[int(i)] for i in model.predict(x_test.double().numpy())]


def knn_predict(x_train: Tensor, y_train: Sequence[Hashable], x_test: Tensor, *, k: int = 5) -> list[Hashable]:
    """Majority label of the ``k`` most cosine-similar train rows (ties: summed similarity, then first seen)."""
    classes = list(dict.fromkeys(y_train))
    lookup = {c: i for i, c in enumerate(classes)}
    index = torch.tensor([lookup[y] for y in y_train])
    k = min(k, x_train.shape[0])
    sims = F.normalize(x_test.double(), dim=-1) @ F.normalize(x_train.double(), dim=-1).T
    top_sims, top = torch.sort(sims, dim=1, descending=True, stable=True)
    top_sims, top = top_sims[:, :k], top[:, :k]
    votes = torch.zeros(x_test.shape[0], len(classes), dtype=torch.float64)
    weight = torch.zeros_like(votes)
    votes.scatter_add_(1, index[top], torch.ones_like(top_sims))
    weight.scatter_add_(1, index[top], top_sims)
    # lexicographic (votes, summed similarity, earlier class): similarities are in [-k, k], so scale votes above them
    score = votes * (4.0 * k + 1) + weight
    best = score.argmax(dim=1)  # argmax returns the first maximum: the earlier class on exact ties
    return [classes[int(i)] for i in best]


def accuracy(gold: Sequence[Hashable], pred: Sequence[Hashable]) -> float:
    """Fraction of equal labels."""
    if len(gold) != len(pred) or not gold:
        raise ValueError(f"accuracy needs equal, non-empty label lists, got {len(gold)} and {len(pred)}")
    return sum(g == p for g, p in zip(gold, pred, strict=True)) / len(gold)


def macro_f1(gold: Sequence[Hashable], pred: Sequence[Hashable]) -> float:
    """Mean over labels in ``gold`` or ``pred`` of F1 = 2TP / (2TP + FP + FN) (0 for a label never right)."""
    if len(gold) != len(pred) or not gold:
        raise ValueError(f"macro_f1 needs equal, non-empty label lists, got {len(gold)} and {len(pred)}")
    right = Counter(g for g, p in zip(gold, pred, strict=True) if g == p)
    n_gold, n_pred = Counter(gold), Counter(pred)
    labels = dict.fromkeys([*gold, *pred])
    # 2TP + FP + FN = (TP + FN) + (TP + FP) = gold count + predicted count, never 0 for these labels
    return sum(2 * right[c] / (n_gold[c] + n_pred[c]) for c in labels) / len(labels)
