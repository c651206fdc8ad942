"""Visual STS (parity with the STS evaluator), built-in image tasks, image task types of run_task, MIEB aggregation."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from image_eval_helpers import BarRenderer, FlattenEncoder, RenderingEncoder
from task_helpers import VectorEncoder, write_tsv

from contrastkit.evaluation.cache import EmbeddingCache
from contrastkit.evaluation.image_sts import render_pairs, visual_sts, visual_sts_images
from contrastkit.evaluation.image_tasks import (
    DIGIT_NAMES,
    evaluate_image_dataset,
    load_image_dataset,
    stratified_split,
    visual_sts_suite,
)
from contrastkit.evaluation.mieb import MIEB_CATEGORIES, aggregate, main_score, task_result
from contrastkit.evaluation.sts import evaluate_sts, read_sts
from contrastkit.evaluation.tasks import EvalOptions, TaskResult, load_task_data, run_task, task_names

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("CONTRASTKIT_SHARED_DATA", ROOT.parent / "shared" / "data"))
ROWS = [
    ("the cat sat on the mat", "a cat sat on a mat", 4.8),
    ("dogs run fast", "a dog runs", 3.5),
    ("hello world", "hello there world", 4.0),
    ("the red cat", "blue skies are slow", 0.5),
    ("a small dog", "the small dog", 4.5),
    ("rain falls", "hello", 0.2),
]


def _pixel() -> RenderingEncoder:
    return RenderingEncoder(BarRenderer(), FlattenEncoder(8 * 64, dim=16, seed=1))


def _sts(folder: Path, split: str = "test") -> Path:
    write_tsv(folder / f"{split}.tsv", ("sentence1", "sentence2", "score"), ROWS)
    return folder


def test_visual_sts_is_the_sts_evaluator_and_matches_pre_rendered_images(tmp_path) -> None:
    pairs = read_sts(_sts(tmp_path / "sts"))
    pixel = _pixel()
    text = VectorEncoder({s: [len(s), s.count("a") + 1.0] for row in ROWS for s in row[:2]})
    result = visual_sts(pixel, pairs, text, cache=EmbeddingCache())
    plain = evaluate_sts(pixel, pairs, cache=EmbeddingCache())
    assert result.pixel.metrics == plain.metrics and result.cosine == plain.cosine
    assert result.metrics["spearman"] == result.metrics["main_score"] == plain.metrics["spearman"]
    assert result.metrics["text_spearman"] == evaluate_sts(text, pairs, cache=EmbeddingCache()).metrics["spearman"]
    assert result.summary().startswith(f"spearman x 100: pixel {100 * plain.metrics['spearman']:.2f}, text ")
    # the same model fed pre-rendered images: same cosines, same correlations
    first, second = render_pairs(pairs, BarRenderer())
    images = visual_sts_images(pixel.image_encoder, first, second, pairs.scores)
    np.testing.assert_allclose(images.cosine, plain.cosine, atol=1e-6)
    assert images.metrics["spearman"] == pytest.approx(plain.metrics["spearman"])
    assert images.metrics["pearson"] == pytest.approx(plain.metrics["pearson"], abs=1e-6)
    with pytest.raises(ValueError, match="6 first images, 5 second images and 6 scores"):
        visual_sts_images(pixel.image_encoder, first, second[:5], pairs.scores)


def test_visual_sts_suite_names_its_data(tmp_path) -> None:
    _sts(tmp_path / "stsb")
    _sts(tmp_path / "sickr", "trial")
    results = visual_sts_suite(_pixel(), tmp_path, sets=["stsb", "sickr"], cache=EmbeddingCache())
    assert [(r.task, Path(r.data).name, r.split) for r in results] == [("visual-sts", "stsb", "test"),
                                                                       ("visual-sts", "sickr", "trial")]  # fmt: skip
    rendered = visual_sts_suite(_pixel().image_encoder, tmp_path, sets={"stsb": "test"}, renderer=BarRenderer())
    assert rendered[0].metrics["spearman"] == pytest.approx(results[0].metrics["spearman"])
    json.dumps([r.to_json() for r in results])
    from contrastkit.data.errors import DataError

    with pytest.raises(DataError, match="sts13"):
        visual_sts_suite(_pixel(), tmp_path, sets=["sts13"])


def test_stratified_split_is_seeded_and_keeps_proportions() -> None:
    labels = np.array([0] * 10 + [1] * 6 + [2] * 3)
    train, test = stratified_split(labels, test_fraction=0.5, seed=0)
    assert sorted([*train, *test]) == list(range(19)) and not set(train) & set(test)
    assert np.bincount(labels[test]).tolist() == [5, 3, 2]  # round(1.5) = 2
    again, _ = stratified_split(labels, seed=0)
    assert again.tolist() == train.tolist()
    assert stratified_split(labels, seed=1)[0].tolist() != train.tolist()
    with pytest.raises(ValueError, match="test_fraction"):
        stratified_split(labels, test_fraction=1.0)


class _DigitText(VectorEncoder):
    """The 10 digit prompts at 10 random directions."""

    def __init__(self, template: str = "a photo of the digit {}", dim: int = 16) -> None:
        g = torch.Generator().manual_seed(5)
        super().__init__({template.format(n): torch.randn(dim, generator=g).tolist() for n in DIGIT_NAMES})


def test_evaluate_image_dataset_on_digits() -> None:
    data = load_image_dataset("digits", limit=600)
    encoder = FlattenEncoder(64, dim=16)
    results = evaluate_image_dataset(encoder, data, text_encoder=_DigitText(), n_shot=8, n_experiments=2,
                                     cache=EmbeddingCache())  # fmt: skip
    assert encoder.calls == [len(data.train_images), len(data.test_images)]  # each image encoded once for 3 tasks
    assert [r.task for r in results] == ["image-classification", "image-clustering", "zero-shot-classification"]
    assert all(r.data == "sklearn:digits" and r.split == "test" for r in results)
    probe, clusters, zero_shot = (r.metrics for r in results)
    assert 0.7 < probe["accuracy"] <= 1.0 and probe["knn_accuracy"] > 0.85 and clusters["nmi"] > 0.4
    assert 0.0 <= zero_shot["accuracy"] <= 1.0
    assert results[2].details.prompts[0] == "a photo of the digit zero"
    assert TaskResult.from_json(json.loads(json.dumps(results[0].to_json()))) == results[0]


def test_image_task_types_run_through_run_task(tmp_path) -> None:
    assert task_names()[-4:] == ["visual-sts", "image-classification", "image-clustering", "zero-shot-classification"]
    options = EvalOptions(cache=EmbeddingCache(), params={"methods": ["knn"], "limit": 400, "k": 3})
    result = run_task("image-classification", FlattenEncoder(64), "digits", options=options)
    assert result.to_json()["data"] == "digits" and result.metrics["knn_accuracy"] > 0.85
    clusters = run_task("image-clustering", FlattenEncoder(64), "digits",
                        options=EvalOptions(params={"limit": 400, "seed": 1}))  # fmt: skip
    assert 0.3 < clusters.metrics["nmi"] <= 1.0 and clusters.metrics["main_score"] == clusters.metrics["nmi"]
    sts = run_task("visual-sts", _pixel(), _sts(tmp_path / "sts"), options=EvalOptions(cache=EmbeddingCache()))
    assert sts.metrics["main_score"] == sts.metrics["spearman"]
    with pytest.raises(ValueError, match="use split 'test'"):
        load_task_data("image-classification", "digits", "train")
    with pytest.raises(ValueError, match=r"unknown option\(s\) k; valid options: text_model, renderer"):
        run_task("visual-sts", _pixel(), tmp_path / "sts", options=EvalOptions(params={"k": 3}))


def test_zero_shot_task_type_with_a_dual_encoder() -> None:
    from contrastkit.encoders.dual import DualEncoder

    dual = DualEncoder(FlattenEncoder(64, dim=16), _DigitText("the number {}"))
    options = EvalOptions(cache=EmbeddingCache(), params={"limit": 300, "template": "the number {}"})
    result = run_task("zero-shot-classification", dual, "digits", options=options)
    assert set(result.metrics) == {"accuracy", "main_score"} and result.details.prompts[1] == "the number one"
    with pytest.raises(ValueError, match="needs a text tower"):
        run_task("zero-shot-classification", FlattenEncoder(64), "digits", options=EvalOptions(params={"limit": 50}))


def test_mieb_aggregate_arithmetic() -> None:
    results = [
        task_result("image-classification", "a", "test", {"accuracy": 0.9, "main_score": 0.8}),
        task_result("image-classification", "b", "test", {"main_score": 0.4}),
        task_result("image-clustering", "a", "test", {"nmi": 0.3}),  # no main_score: the category's metric
        task_result("visual-sts", "stsb", "test", {"spearman": 0.5, "pearson": 0.9}),
        task_result("compositionality", "winoground", "test", {"text_acc": 0.3, "accuracy": 0.1, "main_score": 0.1}),
    ]
    agg = aggregate(results)
    expected = {"linear_probe": 0.6, "clustering": 0.3, "compositionality": 0.1, "visual_sts": 0.5}
    assert list(agg.metrics) == [*expected, "mean"]  # categories in MIEB order, then the mean
    assert agg.metrics == pytest.approx({**expected, "mean": (0.6 + 0.3 + 0.1 + 0.5) / 4})
    assert agg.task == "mieb" and agg.details["linear_probe"] == [("a", 0.8), ("b", 0.4)]
    assert json.loads(json.dumps(agg.to_json()))["metrics"]["mean"] == pytest.approx(0.375)
    assert len(MIEB_CATEGORIES) == 8 and MIEB_CATEGORIES["document_understanding"].main_metric == "ndcg@5"
    with pytest.raises(KeyError, match="task 'sts' belongs to no MIEB category"):
        aggregate([TaskResult("sts", "stsb", "test", {"spearman": 0.8})])
    with pytest.raises(KeyError, match="no 'main_score' and no 'nmi' metric"):
        main_score(TaskResult("image-clustering", "x", "test", {"ari": 0.1}))
    with pytest.raises(ValueError, match="non-finite"):
        task_result("visual-sts", "x", "test", {"spearman": float("nan")})


@pytest.mark.skipif(not (SHARED / "mnist_test").is_dir(), reason="shared MNIST data not available")
def test_mnist_test_folder_raw_pixels() -> None:
    data = load_image_dataset(SHARED / "mnist_test", limit=2000)
    assert data.source == str(SHARED / "mnist_test") and data.train_images.shape[1:] == (28, 28)
    assert len(data.train_images) + len(data.test_images) == 2000
    result = evaluate_image_dataset(FlattenEncoder(28 * 28), data, methods=("knn",))
    assert result[0].metrics["knn_accuracy"] > 0.85
