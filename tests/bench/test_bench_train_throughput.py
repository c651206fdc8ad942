"""Smoke test of bench/train_throughput.py: the measuring function on a tiny random BERT, and the report logic."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
from bench_helpers import load_bench

TESTS_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(TESTS_DIR / "training"))
        yield load_bench("bench_train_throughput", "train_throughput.py", mp)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny random BERT folder and a JSONL of (anchor, positive, negative) triplets."""
    sys.path.insert(0, str(TESTS_DIR / "training"))
    try:
        from training_helpers import make_pairs, tiny_bert, write_jsonl
    finally:
        sys.path.remove(str(TESTS_DIR / "training"))
    root = tmp_path_factory.mktemp("tiny")
    return tiny_bert(root / "bert"), write_jsonl(make_pairs(40, negatives=True), root / "train.jsonl")


def _check_result(r: dict, steps: int) -> None:
    assert math.isfinite(r["pairs_per_s"]) and r["pairs_per_s"] > 0
    assert len(r["step_s"]) == steps and all(t > 0 for t in r["step_s"])
    assert r["cpu_s_per_step"] > 0
    assert r["padded_tokens_per_step"] >= r["real_tokens_per_step"] > 0
    assert math.isfinite(r["mean_loss"]) and r["mean_loss"] > 0
    phases = r["phases_s"]
    for name in ("tokenize", "forward", "loss", "backward", "optimizer"):
        assert phases[name] > 0, name
    assert sum(phases.values()) == pytest.approx(r["elapsed_s"] / steps)


@pytest.mark.parametrize(
    ("negatives", "chunk", "sub_batch", "unpad"),
    [(False, None, None, True), (True, 2, None, True), (False, None, 2, True), (False, None, None, False)],
)
def test_contrastkit_measurement(bench, tiny, monkeypatch, negatives, chunk, sub_batch, unpad):
    from contrastkit.training import loop, optim

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    backward, clip = torch.Tensor.backward, loop.clip_gradients
    model, data = tiny
    spec = bench.Spec(
        tool="contrastkit",
        model=str(model),
        data=str(data),
        negatives=negatives,
        chunk=chunk,
        batch_size=4,
        max_seq_length=16,
        warmup=1,
        steps=2,
        sub_batch=sub_batch,
        unpad=unpad,
    )
    r = bench.measure(spec)
    _check_result(r, steps=2)
    assert "fused=True" in r["optimizer"]
    # the timers are removed afterwards
    assert torch.Tensor.backward is backward and loop.clip_gradients is clip
    assert loop.build_optimizer is optim.build_optimizer
    if chunk:  # GradCache embeds every text twice
        assert r["real_tokens_per_step"] >= 2 * 4 * (2 + negatives)


def test_contended_run_is_abandoned(bench, tiny, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    backward = torch.Tensor.backward
    model, data = tiny
    spec = bench.Spec(
        tool="contrastkit", model=str(model), data=str(data), batch_size=4, max_seq_length=16, warmup=1, steps=3
    )
    r = bench.measure(spec, abort_above=-1.0)  # any share of other processes is too much
    assert r["contended"] is True and r["step"] == 1 and "pairs_per_s" not in r
    assert torch.Tensor.backward is backward


def test_st_measurement(bench, tiny, monkeypatch):
    pytest.importorskip("datasets")  # SentenceTransformerTrainer needs it; the project venv does not ship it
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, data = tiny
    spec = bench.Spec(tool="st", model=str(model), data=str(data), batch_size=4, max_seq_length=16, warmup=1, steps=2)
    _check_result(bench.measure(spec), steps=2)


def test_ratios_and_targets(bench):
    def row(tool, pairs_per_s, negatives=False, chunk=None, batch=32, sub_batch=None, unpad=True):
        return {
            "unpad": unpad,
            "tool": tool,
            "negatives": negatives,
            "chunk": chunk,
            "batch_size": batch,
            "sub_batch": sub_batch,
            "pairs_per_s": pairs_per_s,
        }

    rows = [
        row("contrastkit", 60.0),
        row("st", 40.0),
        row("contrastkit", 45.0, chunk=32),
        row("st", 30.0, chunk=32),
        row("contrastkit", 40.0, chunk=8),
        row("contrastkit", 50.0, batch=8),
        row("contrastkit", 66.0, sub_batch=8),
        row("contrastkit", 40.0, unpad=False),
    ]
    out = {name: (value, target) for name, value, target in bench.ratios(rows, 32, [32, 8], [8])}
    assert out["contrastkit in-batch / ST MNRL (pairs)"] == (pytest.approx(1.5), bench.SPEEDUP_TARGET)
    cached = "contrastkit cached (batch 32, chunk 32) / contrastkit in-batch (batch 32)"
    assert out[cached] == (pytest.approx(0.75), bench.GRADCACHE_TARGET)
    cached = "contrastkit cached (batch 32, chunk 8) / contrastkit in-batch (batch 8)"
    assert out[cached] == (pytest.approx(0.8), bench.GRADCACHE_TARGET)
    assert out["ST CMNRL (batch 32, mini-batch 32) / ST MNRL (batch 32)"] == (pytest.approx(0.75), None)
    sub = "contrastkit in-batch, sub-batch 8 / ST MNRL (pairs)"
    assert out[sub] == (pytest.approx(1.65), bench.SPEEDUP_TARGET)
    assert out["contrastkit in-batch, sub-batch 8 / contrastkit in-batch, one call per side"][0] == pytest.approx(1.1)
    assert out["contrastkit in-batch / contrastkit in-batch, padded forward"][0] == pytest.approx(1.5)
    assert out["contrastkit in-batch, padded forward / ST MNRL (pairs)"] == (pytest.approx(1.0), None)
    assert not any("ST CMNRL (batch 32, mini-batch 8)" in name for name in out)  # not measured: no row
