"""Smoke test of bench/eval.py's core: both evaluators on a tiny analytic static encoder agree, with timings."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from bench_helpers import load_bench

WORDS = ["cat", "dog", "car", "bus", "sun", "rain", "red", "blue"]


@pytest.fixture(scope="module")
def bench():
    with pytest.MonkeyPatch.context() as mp:
        yield load_bench("bench_eval", "eval.py", mp)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A bag-of-words StaticEncoder (word i -> fixed vector) and the same model loaded by sentence-transformers."""
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer, models, pre_tokenizers

    from contrastkit.encoders.static import StaticEncoder

    vocab = {"[UNK]": 0, **{w: i + 1 for i, w in enumerate(WORDS)}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    angles = [0, 10, 60, 70, 120, 130, 200, 260]  # words close in angle are "similar"
    weights = torch.tensor([[0.0, 0.0]] + [[math.cos(math.radians(a)), math.sin(math.radians(a))] for a in angles])
    encoder = StaticEncoder(tokenizer, weights)
    folder = tmp_path_factory.mktemp("static") / "model"
    encoder.save(folder)
    return encoder, SentenceTransformer(str(folder), device="cpu")


def test_sts_row_agrees_with_sentence_transformers(bench, models) -> None:
    from contrastkit.evaluation.sts import StsData

    encoder, model = models
    s1 = ["cat", "cat", "cat", "cat", "car", "bus"]
    s2 = ["dog", "car", "sun", "red", "rain", "red"]  # 10, 60, 120, 160, 70, 130 degrees apart: distinct cosines
    gold = [5.0, 3.0, 1.5, 0.0, 4.0, 1.0]
    row = bench.sts_row("STS-B test", encoder, model, StsData(s1, s2, gold, Path("inline")), batch_size=2)
    assert row.reference == 82.03 and row.metric == "Spearman"
    # cosine ranks 6, 5, 3, 1, 4, 2 against gold ranks 6, 4, 3, 1, 5, 2: 1 - 6 * 2 / (6 * 35)
    assert row.ours == pytest.approx(100 * (1 - 12 / 210), abs=1e-9)
    assert row.st == pytest.approx(row.ours, abs=1e-9)
    assert row.ours_seconds > 0 and row.st_seconds > 0 and row.ratio > 0 and row.ours_cpu >= 0


def test_retrieval_row_agrees_with_sentence_transformers(bench, models) -> None:
    from contrastkit.data.beir import BeirDataset

    encoder, model = models
    corpus = {"d1": "dog", "d2": "bus", "d3": "rain", "d4": "blue"}
    queries = {"q1": "cat", "q2": "car", "q3": "red"}
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d4": 1}}
    row = bench.retrieval_row("SciFact", encoder, model, BeirDataset(corpus, queries, qrels), batch_size=3)
    # q1, q2 find their document first; q3 (200 deg) is 60 deg from blue (260) and 70 from rain (130): first too
    assert row.ours == pytest.approx(100.0) and row.st == pytest.approx(100.0)
    qrels_wrong = {"q1": {"d2": 1}, "q2": {"d2": 1}, "q3": {"d4": 1}}  # q1 ranks dog (10 deg), bus (70): rank 2
    row = bench.retrieval_row("x", encoder, model, BeirDataset(corpus, queries, qrels_wrong), batch_size=3)
    assert row.reference is None
    assert row.ours == pytest.approx(100 * (1 / math.log2(3) + 2) / 3) and row.st == pytest.approx(row.ours)


def test_throughput_and_report(bench, models) -> None:
    encoder, model = models
    texts = [" ".join(WORDS[: 1 + i % 8]) for i in range(100)]
    rate = bench.throughput("short", encoder, model, texts, batch_size=16, repeats=2)
    assert rate.texts == 100 and rate.ours > 0 and rate.st > 0 and rate.ours_cpu > 0 and rate.st_cpu > 0
    row = bench.Row("STS12", "Spearman", 72.37, 72.40, 72.41, 2.0, 3.0, 0.1, 1.0, 2.0)
    report = bench.render([row], [rate], command="python bench/eval.py --limit 5", info={"cpu": "x"})
    assert "`python bench/eval.py --limit 5`" in report
    assert (
        "| STS12 | Spearman | 72.37 | 72.400 | 72.410 | 0.030 | 2.0 (1.0) | 3.0 (2.0) | 1.50 | 2.00 | 10% |" in report
    )
    assert "| short | 100 | 16 |" in report
