"""Clustering: V-measure by hand (through conditional entropies), k-means on separable analytic blobs, sets."""

import math
import random

import pytest
import torch
from task_helpers import VectorEncoder, polar, write_tsv

from contrastkit.evaluation.cache import EmbeddingCache
from contrastkit.evaluation.clustering import evaluate_clustering, kmeans, v_measure
from contrastkit.evaluation.datafiles import read_labelled


def _h(*probabilities: float) -> float:
    return -sum(p * math.log(p) for p in probabilities if p)


def test_v_measure_by_hand() -> None:
    gold = ["a", "a", "b", "b"]
    clusters = [0, 0, 0, 1]
    # H(C) = ln 2; H(K) = H(3/4, 1/4); H(C|K) = 3/4 H(2/3, 1/3) (cluster 1 is pure); H(K|C) = 1/2 ln 2 (class b split)
    h = 1 - 0.75 * _h(2 / 3, 1 / 3) / math.log(2)
    c = 1 - 0.5 * math.log(2) / _h(3 / 4, 1 / 4)
    got = v_measure(gold, clusters)
    assert got["homogeneity"] == pytest.approx(h, abs=1e-12)
    assert got["completeness"] == pytest.approx(c, abs=1e-12)
    assert got["v_measure"] == pytest.approx(2 * h * c / (h + c), abs=1e-12)


def test_v_measure_edge_cases() -> None:
    assert v_measure(["x", "x", "y"], [7, 7, 3]) == {"v_measure": 1.0, "homogeneity": 1.0, "completeness": 1.0}
    # one cluster for two labels: complete (H(K) = 0) but not homogeneous
    assert v_measure(["x", "y", "x", "y"], [0, 0, 0, 0]) == {"v_measure": 0.0, "homogeneity": 0.0, "completeness": 1.0}
    # every point its own cluster: homogeneous, completeness 1 - H(K|C)/H(K) = 1 - ln2 / ln4 = 1/2
    got = v_measure(["x", "x", "y", "y"], [0, 1, 2, 3])
    assert got["homogeneity"] == 1.0 and got["completeness"] == pytest.approx(0.5)
    with pytest.raises(ValueError):
        v_measure([], [])


def test_v_measure_matches_scikit_learn() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    rng = random.Random(0)
    gold = [rng.randrange(4) for _ in range(100)]
    clusters = [g if rng.random() < 0.5 else rng.randrange(5) for g in gold]
    h, c, v = metrics.homogeneity_completeness_v_measure(gold, clusters)
    got = v_measure(gold, clusters)
    assert (got["homogeneity"], got["completeness"], got["v_measure"]) == pytest.approx((h, c, v), abs=1e-12)


def test_kmeans_finds_separated_blobs() -> None:
    gen = torch.Generator().manual_seed(0)
    centres = torch.tensor([[10.0, 0.0], [0.0, 10.0], [-10.0, -10.0]])
    truth = [i % 3 for i in range(30)]
    x = centres[truth] + torch.randn(30, 2, generator=gen)
    assert v_measure(truth, kmeans(x, 3))["v_measure"] == 1.0
    assert kmeans(x, 1) == [0] * 30
    with pytest.raises(ValueError):
        kmeans(x, 31)


def test_evaluate_clustering_per_group_sets(tmp_path) -> None:
    rng = random.Random(0)
    table, rows = {}, []
    for i in range(24):
        group = "g1" if i < 12 else "g2"
        label = ["red", "green", "blue"][i % 3] if group == "g1" else ["up", "down"][i % 2]
        angle = {"red": 0, "green": 120, "blue": 240, "up": 90, "down": 270}[label]
        table[f"t{i}"] = polar(angle + rng.uniform(-10, 10))
        rows.append((f"t{i}", label, group))
    write_tsv(tmp_path / "test.tsv", ("text", "label", "group"), rows)
    data = read_labelled(tmp_path, "test")
    assert data.groups[0] == "g1" and data.groups[-1] == "g2"
    result = evaluate_clustering(VectorEncoder(table), data, cache=EmbeddingCache())
    assert set(result.sets) == {"g1", "g2"}
    assert result.metrics == {"v_measure": 1.0, "homogeneity": 1.0, "completeness": 1.0}
    # a scrambled set halves the mean: labels unrelated to geometry in g2
    write_tsv(tmp_path / "dev.tsv", ("text", "label"), [(f"t{i}", ["a", "b"][(i // 2) % 2]) for i in range(12, 24)])
    scrambled = evaluate_clustering(VectorEncoder(table), read_labelled(tmp_path, "dev"), cache=EmbeddingCache())
    assert list(scrambled.sets) == [None] and scrambled.metrics["v_measure"] < 0.2
