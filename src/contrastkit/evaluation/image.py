"""Image evaluation (MIEB protocols): encoding either modality, kNN and linear-probe classification, clustering.

Inputs on the image side are what an image encoder takes (numpy uint8 arrays
(H, W) or (H, W, 3), PIL images or paths; a (n, H, W) array is a list of n
images); on the text side, strings. Every function names the modality of each
side (:data:`Modality`), because a path and a sentence are both strings.
Texts are encoded through the embedding cache (:func:`encode_cached`); images
are passed to ``encoder.encode`` as they are and never cached (the cache keys
on text).

* **Classification** (MIEB's ImageClassification, "linear probe"): the train
  and test images are encoded once; ``linear``: scikit-learn logistic
  regression (C = 1, lbfgs, ``max_iter`` 100) trained on ``n_shot`` images per
  class (a stratified, seeded draw, exactly ``n_shot`` of each class) in each
  of ``n_experiments`` experiments (experiment i uses seed ``seed + i``), the
  metric ``accuracy`` being the mean test accuracy (``accuracy_std`` their
  population standard deviation); ``n_shot=None`` trains one probe on the
  whole train set. ``knn``: the ``k`` most cosine-similar train images of the
  whole train set vote (``knn_accuracy``). Both probes are those of
  :mod:`contrastkit.evaluation.classification`.
* **Clustering**: scikit-learn ``MiniBatchKMeans`` (k = number of labels,
  batch 500, ``n_init="auto"``, ``random_state=seed``) on the embeddings as
  returned; ``nmi`` (normalised mutual information with arithmetic-mean
  normalisation, which equals the V-measure of
  :func:`~contrastkit.evaluation.clustering.v_measure`), ``ari`` (adjusted Rand
  index) and ``accuracy`` (the best one-to-one matching of clusters to labels,
  Hungarian algorithm).

Every metric dict also holds ``main_score``, the protocol's main metric
(MIEB: linear-probe accuracy, NMI). Metrics are fractions in [0, 1]; MIEB
tables show them x 100. Zero-shot classification is in
:mod:`~contrastkit.evaluation.image_zero_shot`, retrieval, compositionality
and multiple choice in :mod:`~contrastkit.evaluation.image_retrieval`, visual
STS in :mod:`~contrastkit.evaluation.image_sts`.

Example::

    >>> import torch
    >>> x = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    >>> classify_embeddings(x, [0, 0, 1, 1], x, [0, 0, 1, 1], methods=("knn",), k=1).metrics["knn_accuracy"]
    1.0
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from contrastkit.evaluation.cache import CachedEncoder, EmbeddingCache, encode_cached
from contrastkit.evaluation.classification import accuracy, knn_predict, logistic_regression, undersample
from contrastkit.evaluation.clustering import v_measure

Modality = Literal["text", "image"]
MODALITIES: tuple[str, ...] = ("text", "image")
CLASSIFIERS: tuple[str, ...] = ("knn", "linear")


def as_items(items: Any) -> list[Any]:
    """A list of inputs: a (n, ...) numpy array becomes its n rows (images); any other sequence is listed."""
    if isinstance(items, (str, bytes)):
        raise TypeError("expected a sequence of items, got a single string")
    return list(items)


def as_labels(labels: Any) -> list[Hashable]:
    """Labels as a list of Python values (a numpy array's ``tolist()``)."""
    return labels.tolist() if isinstance(labels, np.ndarray) else list(labels)


def encode_items(
    encoder: Any,
    items: Any,
    *,
    modality: Modality,
    batch_size: int = 64,
    prompt_name: str | None = None,
    cache: EmbeddingCache | None = None,
) -> Tensor:
    """(n, d) float32 embeddings of ``items``: texts through the embedding cache, images straight to ``encode``.

    Raises:
        ValueError: an unknown modality, a wrong output shape or non-finite embeddings.
        TypeError: a text item that is not a string.
    """
    if modality not in MODALITIES:
        raise ValueError(f"modality must be one of {MODALITIES}, got {modality!r}")
    items = as_items(items)
    if modality == "text":
        bad = next((i for i, t in enumerate(items) if not isinstance(t, str)), None)
        if bad is not None:
            raise TypeError(f"text item {bad} is a {type(items[bad]).__name__}, not a str")
        emb = encode_cached(encoder, items, batch_size=batch_size, prompt_name=prompt_name, cache=cache)
    else:
        inner = encoder.encoder if isinstance(encoder, CachedEncoder) else encoder
        kwargs = {"prompt_name": prompt_name} if prompt_name is not None else {}
        emb = inner.encode(items, batch_size=batch_size, **kwargs)
    emb = torch.as_tensor(emb).detach().float().cpu()
    if emb.ndim != 2 or emb.shape[0] != len(items):
        raise ValueError(f"the {modality} encoder returned shape {tuple(emb.shape)} for {len(items)} items")
    if not torch.isfinite(emb).all():
        raise ValueError(f"the {modality} encoder returned non-finite embeddings")
    return emb


# ---------------------------------------------------------------- classification
@dataclass(frozen=True)
class ImageClassificationResult:
    """Metrics, the per-experiment linear-probe accuracies, the last predictions per method and the gold labels."""

    metrics: dict[str, float]
    probe_accuracies: list[float]
    predictions: dict[str, list[Hashable]]
    gold: list[Hashable]


def evaluate_image_classification(
    encoder: Any,
    train_items: Any,
    train_labels: Any,
    test_items: Any,
    test_labels: Any,
    *,
    modality: Modality = "image",
    batch_size: int = 64,
    prompt_name: str | None = None,
    cache: EmbeddingCache | None = None,
    **probe: Any,
) -> ImageClassificationResult:
    """Encode both sides and run :func:`classify_embeddings` (``probe``: its keyword arguments)."""

    def encode(items: Any) -> Tensor:
        return encode_items(
            encoder, items, modality=modality, batch_size=batch_size, prompt_name=prompt_name, cache=cache
        )

    x_train, x_test = encode(train_items), encode(test_items)
    return classify_embeddings(x_train, train_labels, x_test, test_labels, **probe)


def classify_embeddings(
    x_train: Tensor,
    train_labels: Any,
    x_test: Tensor,
    test_labels: Any,
    *,
    methods: Sequence[str] = CLASSIFIERS,
    k: int = 5,
    n_shot: int | None = 16,
    n_experiments: int = 5,
    max_iter: int = 100,
    seed: int = 0,
) -> ImageClassificationResult:
    """kNN and n-shot linear-probe accuracy of (n, d) train / (m, d) test embeddings (see the module docstring)."""
    y_train, y_test = as_labels(train_labels), as_labels(test_labels)
    if set(methods) - set(CLASSIFIERS) or not methods:
        raise ValueError(f"methods must be a non-empty subset of {CLASSIFIERS}, got {tuple(methods)}")
    if k < 1 or n_experiments < 1 or (n_shot is not None and n_shot < 1):
        raise ValueError(f"k, n_experiments and n_shot must be >= 1, got {k}, {n_experiments}, {n_shot}")
    if len(y_train) != x_train.shape[0] or len(y_test) != x_test.shape[0]:
        raise ValueError(
            f"{len(y_train)} train / {len(y_test)} test labels for {x_train.shape[0]} / {x_test.shape[0]} rows"
        )
    if len(set(y_train)) < 2:
        raise ValueError(f"the train set has {len(set(y_train))} class(es); a probe needs 2")
    metrics: dict[str, float] = {}
    predictions: dict[str, list[Hashable]] = {}
    scores: list[float] = []
    if "linear" in methods:
        for i in range(n_experiments if n_shot is not None else 1):
            rows = sample_n_shot(y_train, n_shot, seed=seed + i) if n_shot is not None else list(range(len(y_train)))
            labels = [y_train[r] for r in rows]
            predictions["linear"] = logistic_regression(x_train[rows], labels, x_test, max_iter=max_iter, seed=seed + i)
            scores.append(accuracy(y_test, predictions["linear"]))
        metrics["accuracy"] = math.fsum(scores) / len(scores)
        metrics["accuracy_std"] = float(np.std(scores))
    if "knn" in methods:
        predictions["knn"] = knn_predict(x_train, y_train, x_test, k=k)
        metrics["knn_accuracy"] = accuracy(y_test, predictions["knn"])
    metrics["main_score"] = metrics["accuracy" if "linear" in methods else "knn_accuracy"]
    return ImageClassificationResult(metrics, scores, predictions, y_test)


def sample_n_shot(labels: Sequence[Hashable], n_shot: int, *, seed: int) -> list[int]:
    """Row indices of exactly ``n_shot`` rows of every label, drawn by a seeded shuffle (in shuffled order).

    Raises:
        ValueError: a label with fewer than ``n_shot`` rows (named, with its count).
    """
    counts: dict[Hashable, int] = {}
    for y in labels:
        counts[y] = counts.get(y, 0) + 1
    short = {y: c for y, c in counts.items() if c < n_shot}
    if short:
        shown = ", ".join(f"{y!r} ({c})" for y, c in list(short.items())[:5])
        raise ValueError(f"{n_shot}-shot sampling: {len(short)} class(es) have fewer train rows: {shown}")
    return undersample(labels, n_shot, seed=seed)


# ---------------------------------------------------------------- clustering
@dataclass(frozen=True)
class ImageClusteringResult:
    """Metrics, the cluster of each item, and the gold labels."""

    metrics: dict[str, float]
    clusters: list[int]
    gold: list[Hashable]


def evaluate_image_clustering(
    encoder: Any,
    items: Any,
    labels: Any,
    *,
    modality: Modality = "image",
    batch_size: int = 64,
    kmeans_batch_size: int = 500,
    seed: int = 0,
    cache: EmbeddingCache | None = None,
) -> ImageClusteringResult:
    """Encode ``items`` and run :func:`cluster_embeddings`."""
    emb = encode_items(encoder, items, modality=modality, batch_size=batch_size, cache=cache)
    return cluster_embeddings(emb, labels, kmeans_batch_size=kmeans_batch_size, seed=seed)


def cluster_embeddings(
    emb: Tensor, labels: Any, *, kmeans_batch_size: int = 500, seed: int = 0
) -> ImageClusteringResult:
    """MiniBatchKMeans with k = number of labels on (n, d) embeddings; NMI, ARI and matched accuracy."""
    from sklearn.cluster import MiniBatchKMeans
    from sklearn.metrics import adjusted_rand_score

    gold = as_labels(labels)
    k = len(set(gold))
    if len(gold) != emb.shape[0] or not 2 <= k <= len(gold):
        raise ValueError(
            f"clustering needs one label per row and 2 <= #labels <= rows, got {len(gold)}, {k}, {emb.shape[0]}"
        )
    model = MiniBatchKMeans(n_clusters=k, batch_size=kmeans_batch_size, n_init="auto", random_state=seed)
    clusters = [int(c) for c in model.fit(emb.double().numpy()).labels_]
    nmi = v_measure(gold, clusters)["v_measure"]
    metrics = {"nmi": nmi, "ari": float(adjusted_rand_score([str(y) for y in gold], clusters)),
               "accuracy": cluster_accuracy(gold, clusters), "main_score": nmi}  # fmt: skip
    return ImageClusteringResult(metrics, clusters, gold)


def cluster_accuracy(gold: Sequence[Hashable], clusters: Sequence[Hashable]) -> float:
    """Fraction of items whose cluster maps to their label under the best one-to-one cluster -> label matching."""
    from scipy.optimize import linear_sum_assignment

    if len(gold) != len(clusters) or not gold:
        raise ValueError(f"cluster_accuracy needs equal, non-empty lists, got {len(gold)} and {len(clusters)}")
    labels, names = (
        {y: i for i, y in enumerate(dict.fromkeys(gold))},
        {c: i for i, c in enumerate(dict.fromkeys(clusters))},
    )
    counts = np.zeros((len(names), len(labels)), dtype=np.int64)
    for y, c in zip(gold, clusters, strict=True):
        counts[names[c], labels[y]] += 1
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum()) / len(gold)
