"""The image evaluators on the real perception encoders (tiny random pixel / image towers) and the shared data."""

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from contrastkit.data.render import Renderer
from contrastkit.encoders.dual import DualEncoder
from contrastkit.encoders.pixel import build_image_encoder, build_pixel_encoder
from contrastkit.evaluation.cache import EmbeddingCache
from contrastkit.evaluation.image_retrieval import evaluate_document_retrieval, image_text_recall
from contrastkit.evaluation.image_sts import render_pairs, visual_sts, visual_sts_images
from contrastkit.evaluation.image_tasks import rendered_beir_pages
from contrastkit.evaluation.sts import read_sts
from contrastkit.evaluation.tasks import EvalOptions, run_task

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("CONTRASTKIT_SHARED_DATA", ROOT.parent / "shared" / "data"))
TINY = {"hidden": 32, "layers": 1, "heads": 2}
STRIP = Renderer(width=256)


@pytest.mark.skipif(not (SHARED / "stsb").is_dir(), reason="shared STS-B data not available")
def test_visual_stsb_with_a_tiny_pixel_model() -> None:
    pairs = read_sts(SHARED / "stsb", "test")
    pairs = replace(
        pairs, sentences1=pairs.sentences1[:120], sentences2=pairs.sentences2[:120], scores=pairs.scores[:120]
    )
    pixel = build_pixel_encoder(renderer=STRIP, **TINY)
    result = visual_sts(pixel, pairs, pixel, cache=EmbeddingCache())
    assert len(result.cosine) == 120 and all(-1.0 - 1e-6 <= c <= 1.0 + 1e-6 for c in result.cosine)
    assert all(np.isfinite(v) and -1.0 <= v <= 1.0 for v in result.metrics.values())
    assert result.metrics["text_spearman"] == result.metrics["spearman"]  # the same model on both sides
    # pre-rendered strips into an image tower of the renderer's size
    image = build_image_encoder(image_size=STRIP.image_size, patch_size=16, channels=1, **TINY)
    first, second = render_pairs(pairs, STRIP)
    assert first[0].shape == (16, 256) and first[0].dtype == np.uint8
    images = visual_sts_images(image, first, second, pairs.scores)
    assert len(images.cosine) == 120 and np.isfinite(images.metrics["spearman"])


def test_zero_shot_and_recall_with_an_image_tower_and_a_pixel_text_tower() -> None:
    image = build_image_encoder(image_size=(8, 8), patch_size=4, channels=1, **TINY)
    text = build_pixel_encoder(renderer=Renderer(width=128), **TINY)
    assert image.dim == text.dim
    result = run_task("zero-shot-classification", DualEncoder(image, text), "digits",
                      options=EvalOptions(cache=EmbeddingCache(), params={"limit": 200}))  # fmt: skip
    assert 0.0 <= result.metrics["accuracy"] <= 1.0 and len(result.details.predictions) == 100
    from contrastkit.data.images import load_digits_images

    digits, _ = load_digits_images()
    recall = image_text_recall(image, digits[:6], text, [f"digit number {i}" for i in range(6)], k_values=(1, 6),
                               cache=EmbeddingCache())  # fmt: skip
    assert recall["i2t_recall@6"] == recall["t2i_recall@6"] == 1.0  # every item is within the top 6 of 6
    assert 0.0 <= recall["i2t_recall@1"] <= 1.0


@pytest.mark.skipif(not (SHARED / "scifact").is_dir(), reason="shared SciFact data not available")
def test_document_understanding_stand_in_on_rendered_scifact_pages() -> None:
    pages_renderer = Renderer(mode="wrap", height=64, width=64)
    queries, pages, qrels = rendered_beir_pages(SHARED / "scifact", pages_renderer, max_queries=10, max_docs=40)
    assert len(queries) == 10 and len(pages) == 40
    assert all(p.shape == (64, 64) and p.dtype == np.uint8 for p in pages.values())
    assert all(d in pages for q in qrels.values() for d in q)
    reader = build_pixel_encoder(renderer=STRIP, **TINY)
    pager = build_image_encoder(image_size=(64, 64), patch_size=16, channels=1, **TINY)
    result = evaluate_document_retrieval(reader, queries, pager, pages, qrels, cache=EmbeddingCache())
    assert result.num_queries == 10 and result.num_docs == 40
    assert 0.0 <= result.metrics["main_score"] == result.metrics["ndcg@5"] <= 1.0
    with pytest.raises(ValueError, match="fewer than the"):
        rendered_beir_pages(SHARED / "scifact", pages_renderer, max_queries=10, max_docs=2)
