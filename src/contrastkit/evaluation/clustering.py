"""Clustering: V-measure of k-means on the embeddings of labelled texts (MTEB-style).

Data: ``<folder>/<split>.{tsv,jsonl,csv}`` of labelled texts (``text``,
``label``, optional ``group``; see :mod:`contrastkit.evaluation.datafiles`).
Rows sharing a ``group`` form one clustering set (MTEB's datasets hold several
sets); without a group column all rows are one set. Each set is clustered by
k-means with k = its number of distinct labels (scikit-learn ``KMeans``,
k-means++ initialisation, ``n_init`` restarts, ``seed``) on the embeddings as
the encoder returns them, and compared with the gold labels.

Metrics (means over sets, fractions in [0, 1]): ``v_measure``, the harmonic
mean of ``homogeneity`` (each cluster holds one label: 1 - H(C|K) / H(C)) and
``completeness`` (each label in one cluster: 1 - H(K|C) / H(K)), with natural
logarithms and the conventions homogeneity = 1 when H(C) = 0, completeness = 1
when H(K) = 0 (those of Rosenberg and Hirschberg, 2007, and scikit-learn).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from contrastkit.evaluation.cache import EmbeddingCache, encode_cached
from contrastkit.evaluation.datafiles import LabelledTexts


@dataclass(frozen=True)
class ClusteringResult:
    """Mean metrics over sets, per-set metrics (``sets[group]``, group None for an ungrouped file), assignments."""

    metrics: dict[str, float]
    sets: dict[str | None, dict[str, float]]
    clusters: list[int]


def evaluate_clustering(
    encoder: Any,
    data: LabelledTexts,
    *,
    n_init: int = 10,
    seed: int = 0,
    batch_size: int = 64,
    prompt_name: str | None = None,
    cache: EmbeddingCache | None = None,
) -> ClusteringResult:
    """k-means per set with k = number of gold labels, scored by V-measure (see the module docstring)."""
    emb = encode_cached(encoder, data.texts, batch_size=batch_size, prompt_name=prompt_name, cache=cache).float()
    if not emb.isfinite().all():
        raise ValueError("the encoder returned non-finite embeddings")
    clusters = [0] * len(data)
    sets: dict[str | None, dict[str, float]] = {}
    for group in dict.fromkeys(data.groups):
        rows = [i for i, g in enumerate(data.groups) if g == group]
        labels = [data.labels[i] for i in rows]
        assigned = kmeans(emb[rows], len(set(labels)), n_init=n_init, seed=seed)
        for i, c in zip(rows, assigned, strict=True):
            clusters[i] = c
        sets[group] = v_measure(labels, assigned)
    names = ("v_measure", "homogeneity", "completeness")
    metrics = {name: sum(s[name] for s in sets.values()) / len(sets) for name in names}
    return ClusteringResult(metrics, sets, clusters)


def kmeans(x: Tensor, k: int, *, n_init: int = 10, seed: int = 0) -> list[int]:
    """Cluster index of each row of ``x`` by k-means (k-means++ init, the best of ``n_init`` runs by inertia)."""
    if k < 1 or k > x.shape[0]:
        raise ValueError(f"k-means needs 1 <= k <= {x.shape[0]} rows, got k={k}")
    if k == 1:
        return [0] * x.shape[0]
    from sklearn.cluster import KMeans

    model = KMeans(n_clusters=k, n_init=n_init, random_state=seed)
    return [int(c) for c in model.fit_predict(x.double().numpy())]


def v_measure(gold: Sequence[Hashable], clusters: Sequence[Hashable]) -> dict[str, float]:
    """``{"v_measure", "homogeneity", "completeness"}`` of a clustering against gold labels."""
    if len(gold) != len(clusters) or not gold:
        raise ValueError(f"v_measure needs equal, non-empty label lists, got {len(gold)} and {len(clusters)}")
    joint = Counter(zip(gold, clusters, strict=True))
    h_c, h_k = _entropy(Counter(gold).values()), _entropy(Counter(clusters).values())
    h_ck = _entropy(joint.values())  # H(C, K)
    homogeneity = 1.0 if h_c == 0 else 1.0 - (h_ck - h_k) / h_c  # H(C|K) = H(C,K) - H(K)
    completeness = 1.0 if h_k == 0 else 1.0 - (h_ck - h_c) / h_k
    total = homogeneity + completeness
    v = 0.0 if total == 0 else 2 * homogeneity * completeness / total
    return {"v_measure": _unit(v), "homogeneity": _unit(homogeneity), "completeness": _unit(completeness)}


def _entropy(counts: Any) -> float:
    counts = list(counts)
    n = sum(counts)
    return -sum(c / n * math.log(c / n) for c in counts if c)


def _unit(x: float) -> float:
    """Clamp rounding noise (e.g. 1 + 1e-16) into [0, 1]."""
    return min(1.0, max(0.0, x))
