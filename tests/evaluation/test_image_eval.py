"""Image classification (kNN, n-shot linear probe), clustering (NMI) and zero-shot, against hand-computed values."""

import itertools
import math

import numpy as np
import pytest
import torch
from image_eval_helpers import FlattenEncoder, FunctionImageEncoder, angle_of, polar_image
from task_helpers import VectorEncoder

from contrastkit.evaluation.cache import CachedEncoder, EmbeddingCache
from contrastkit.evaluation.image import (
    classify_embeddings,
    cluster_accuracy,
    cluster_embeddings,
    encode_items,
    evaluate_image_classification,
    evaluate_image_clustering,
    sample_n_shot,
)
from contrastkit.evaluation.image_zero_shot import (
    class_embeddings,
    class_prompts,
    evaluate_zero_shot,
    zero_shot_predict,
)


def _unit(degrees):
    return [math.cos(math.radians(degrees)), math.sin(math.radians(degrees))]


# class A at 0, 10, 20, 30 degrees, class B at 90, 100; by angle, a test point at 62 degrees has 90 (B, 28),
# 30 (A, 32), 100 (B, 38), 20 (A, 42), 10 (A, 52): k=1 -> B, k=3 -> B (2:1), k=5 -> A (3:2).
# At 95 degrees: 90 and 100 (B, 5), 30, 20, 10 (A): B for k <= 3, A for k = 5 (3:2). At 5 degrees: A for every k.
TRAIN = torch.tensor([_unit(a) for a in (0, 10, 20, 30, 90, 100)])
TRAIN_Y = ["A", "A", "A", "A", "B", "B"]
TEST = torch.tensor([_unit(62), _unit(5), _unit(95)])
GOLD = ["B", "A", "B"]


@pytest.mark.parametrize(
    ("k", "predicted", "expected"), [(1, ["B", "A", "B"], 1.0), (3, ["B", "A", "B"], 1.0), (5, ["A", "A", "A"], 1 / 3)]
)
def test_knn_accuracy_on_six_points(k, predicted, expected) -> None:
    result = classify_embeddings(TRAIN, TRAIN_Y, TEST, GOLD, methods=("knn",), k=k)
    assert result.predictions == {"knn": predicted} and result.probe_accuracies == []
    assert result.metrics == {"knn_accuracy": pytest.approx(expected), "main_score": pytest.approx(expected)}


def test_n_shot_sampling_is_stratified_and_seeded() -> None:
    labels = [0] * 10 + [1] * 7 + [2] * 5
    rows = sample_n_shot(labels, 4, seed=3)
    assert sorted(labels[r] for r in rows) == [0] * 4 + [1] * 4 + [2] * 4
    assert len(set(rows)) == 12
    assert rows == sample_n_shot(labels, 4, seed=3)
    assert any(sample_n_shot(labels, 4, seed=s) != rows for s in range(4, 8))
    assert sorted(sample_n_shot(labels, 5, seed=0))[-5:] == [17, 18, 19, 20, 21]  # class 2 has exactly 5: all taken
    with pytest.raises(ValueError, match=r"6-shot sampling: 1 class\(es\) have fewer train rows: 2 \(5\)"):
        sample_n_shot(labels, 6, seed=0)


def test_linear_probe_matches_an_independent_loop() -> None:
    from sklearn.linear_model import LogisticRegression

    g = torch.Generator().manual_seed(0)
    centers = torch.randn(3, 5, generator=g) * 2
    y_train = [i % 3 for i in range(60)]
    y_test = [i % 3 for i in range(30)]
    x_train = centers[y_train] + torch.randn(60, 5, generator=g)
    x_test = centers[y_test] + torch.randn(30, 5, generator=g)
    result = classify_embeddings(
        x_train, np.array(y_train), x_test, np.array(y_test), n_shot=4, n_experiments=3, seed=7
    )
    expected = []
    for i in range(3):
        rows = sample_n_shot(y_train, 4, seed=7 + i)
        model = LogisticRegression(max_iter=100, random_state=7 + i).fit(x_train[rows].double().numpy(),
                                                                         [y_train[r] for r in rows])  # fmt: skip
        expected.append(float(np.mean(model.predict(x_test.double().numpy()) == np.array(y_test))))
    assert result.probe_accuracies == pytest.approx(expected)
    assert result.metrics["accuracy"] == pytest.approx(np.mean(expected))
    assert result.metrics["accuracy_std"] == pytest.approx(np.std(expected))
    assert result.metrics["main_score"] == result.metrics["accuracy"]
    assert 0.5 < result.metrics["accuracy"] <= 1.0 and result.metrics["knn_accuracy"] > 0.5
    full = classify_embeddings(x_train, y_train, x_test, y_test, methods=("linear",), n_shot=None)
    model = LogisticRegression(max_iter=100, random_state=0).fit(x_train.double().numpy(), y_train)
    assert full.probe_accuracies == [float(np.mean(model.predict(x_test.double().numpy()) == np.array(y_test)))]
    assert full.metrics["accuracy_std"] == 0.0


def test_classification_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="methods must be"):
        classify_embeddings(TRAIN, TRAIN_Y, TEST, ["A"] * 3, methods=("svm",))
    with pytest.raises(ValueError, match="n_shot must be >= 1"):
        classify_embeddings(TRAIN, TRAIN_Y, TEST, ["A"] * 3, n_shot=0)
    with pytest.raises(ValueError, match="2 test labels for 6 / 3 rows"):
        classify_embeddings(TRAIN, TRAIN_Y, TEST, ["A"] * 2)
    with pytest.raises(ValueError, match="1 class"):
        classify_embeddings(TRAIN, ["A"] * 6, TEST, ["A"] * 3)


def test_digits_raw_pixel_knn_accuracy() -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images * (255 / 16)).round().astype(np.uint8)  # (1797, 8, 8)
    train, test = np.arange(1797) % 2 == 0, np.arange(1797) % 2 == 1
    encoder = FlattenEncoder(64)
    result = evaluate_image_classification(encoder, images[train], digits.target[train], images[test],
                                           digits.target[test], methods=("knn",), k=5)  # fmt: skip
    assert result.metrics["knn_accuracy"] > 0.9
    assert encoder.calls == [int(train.sum()), int(test.sum())]


def test_encode_items_modalities(tmp_path) -> None:
    from PIL import Image

    images = np.stack([polar_image(a) for a in (0, 45, 90)])  # a (3, 4, 4) array is 3 images
    encoder = FunctionImageEncoder(angle_of, 2)
    image_cache = EmbeddingCache()
    emb = encode_items(CachedEncoder(encoder, image_cache), images, modality="image")
    assert image_cache.stats.encoder_calls == 0 and len(image_cache) == 0  # images bypass the text cache
    Image.fromarray(images[1]).save(tmp_path / "img.png")  # a path is an image input, not a text
    by_path = encode_items(encoder, [str(tmp_path / "img.png"), images[2]], modality="image")
    torch.testing.assert_close(by_path, torch.tensor([_unit(45), _unit(90)]))
    assert emb.dtype == torch.float32
    torch.testing.assert_close(emb, torch.tensor([_unit(0), _unit(45), _unit(90)]))
    text = VectorEncoder({"a": [1.0, 0.0], "b": [0.0, 2.0]})
    cache = EmbeddingCache()
    assert encode_items(text, ["b", "a"], modality="text", cache=cache).tolist() == [[0.0, 2.0], [1.0, 0.0]]
    encode_items(text, ["a"], modality="text", cache=cache)
    assert cache.stats.encoder_calls == 1  # texts go through the cache
    with pytest.raises(ValueError, match="modality must be one of"):
        encode_items(text, ["a"], modality="audio")
    with pytest.raises(TypeError, match="text item 1 is a ndarray"):
        encode_items(text, ["a", images[0]], modality="text")
    nan = FunctionImageEncoder(lambda image: [float("nan"), 0.0], 2)
    with pytest.raises(ValueError, match="image encoder returned non-finite"):
        encode_items(nan, images, modality="image")


# ---------------------------------------------------------------- clustering
def test_nmi_is_sklearns_and_separated_blobs_score_one() -> None:
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    g = torch.Generator().manual_seed(1)
    labels = [i % 4 for i in range(80)]
    emb = torch.eye(4)[labels] * 10 + 0.1 * torch.randn(80, 4, generator=g)
    result = cluster_embeddings(emb, labels, seed=0)
    assert result.metrics == {"nmi": pytest.approx(1.0), "ari": pytest.approx(1.0), "accuracy": 1.0,
                              "main_score": pytest.approx(1.0)}  # fmt: skip
    noisy = cluster_embeddings(torch.randn(80, 4, generator=g), labels, kmeans_batch_size=16, seed=0)
    assert noisy.metrics["nmi"] == pytest.approx(normalized_mutual_info_score(labels, noisy.clusters))
    assert noisy.metrics["ari"] == pytest.approx(adjusted_rand_score(labels, noisy.clusters))
    assert noisy.metrics["nmi"] < 0.5
    assert cluster_embeddings(emb, labels, seed=0).clusters == result.clusters  # deterministic by seed


def test_cluster_accuracy_is_the_best_matching() -> None:
    gold = ["a", "a", "b", "b", "c", "c", "c"]
    clusters = [2, 2, 2, 0, 1, 1, 0]
    # brute force over every injective cluster -> label assignment
    best = max(sum(g == dict(zip([0, 1, 2], perm, strict=True))[c] for g, c in zip(gold, clusters, strict=True))
               for perm in itertools.permutations("abc"))  # fmt: skip
    assert best == 5 and cluster_accuracy(gold, clusters) == pytest.approx(5 / 7)  # 2 -> a, 1 -> c, 0 -> b
    assert cluster_accuracy([0, 0, 1], [5, 5, 5]) == pytest.approx(2 / 3)  # one cluster matches one label


def test_evaluate_image_clustering_encodes_images() -> None:
    images = [polar_image(a) for a in (0, 2, 4, 88, 90, 92)]
    result = evaluate_image_clustering(FunctionImageEncoder(angle_of, 2), images, np.array([0, 0, 0, 1, 1, 1]))
    assert result.metrics["nmi"] == pytest.approx(1.0) and len(result.clusters) == 6
    with pytest.raises(ValueError, match="clustering needs"):
        cluster_embeddings(torch.zeros(3, 2), [0, 0, 0])


# ---------------------------------------------------------------- zero-shot
def test_zero_shot_with_identical_image_and_prompt_embeddings() -> None:
    names = ["cat", "dog", "bird"]
    directions = {"cat": 0.0, "dog": 60.0, "bird": 120.0}
    text = VectorEncoder({f"a photo of a {n}": _unit(directions[n]) for n in names})
    images = [polar_image(directions[names[y]]) for y in (0, 1, 2, 2, 1)]
    result = evaluate_zero_shot(FunctionImageEncoder(angle_of, 2), images, [0, 1, 2, 2, 1], text, names,
                                template="a photo of a {}", cache=EmbeddingCache())  # fmt: skip
    assert result.metrics == {"accuracy": 1.0, "main_score": 1.0} and result.predictions == [0, 1, 2, 2, 1]
    assert result.prompts == ["a photo of a cat", "a photo of a dog", "a photo of a bird"]
    # images at 25 and 35 degrees: 25 is nearer cat (0), 35 nearer dog (60); gold says cat for both -> 1/2
    wrong = evaluate_zero_shot(FunctionImageEncoder(angle_of, 2), [polar_image(25), polar_image(35)], [0, 0], text,
                               names, template="a photo of a {name}", cache=EmbeddingCache())  # fmt: skip
    assert wrong.predictions == [0, 1] and wrong.metrics["accuracy"] == 0.5


def test_zero_shot_prompt_ensembling_and_ties() -> None:
    assert class_prompts(["0", "1"], ["digit {}", "number {name}"]) == ["digit 0", "number 0", "digit 1", "number 1"]
    text = VectorEncoder({"digit 0": [2.0, 0.0], "number 0": [0.0, 1.0], "digit 1": [0.0, 3.0], "number 1": [0.0, 1.0]})
    emb, prompts = class_embeddings(text, ["0", "1"], ["digit {}", "number {}"], cache=EmbeddingCache())
    assert prompts == ["digit 0", "number 0", "digit 1", "number 1"]
    # means of the normalised prompt embeddings
    torch.testing.assert_close(emb, torch.tensor([[0.5, 0.5], [0.0, 1.0]], dtype=torch.float64))
    assert zero_shot_predict(
        torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]), torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    ) == [0, 0, 0]
    with pytest.raises(ValueError, match="placeholder"):
        class_prompts(["a"], "no slot")
    with pytest.raises(ValueError, match="at least 2 distinct class names"):
        class_embeddings(text, ["0", "0"], "digit {}")
    with pytest.raises(ValueError, match=r"class indices in \[0, 2\)"):
        evaluate_zero_shot(FunctionImageEncoder(angle_of, 2), [polar_image(0)], [2], text, ["0", "1"],
                           template="digit {}", cache=EmbeddingCache())  # fmt: skip
