"""bench/rerank.py: the dev split is stable and disjoint, the pairs-per-step and rate arithmetic."""

from __future__ import annotations

import json

import pytest
from bench_helpers import load_bench


@pytest.fixture(scope="module")
def bench():
    with pytest.MonkeyPatch.context() as mp:
        yield load_bench("bench_rerank", "rerank.py", mp)


def test_split_removes_exactly_the_dev_queries(bench, tmp_path):
    rows = [{"anchor": f"claim {i}", "positive": ["p"], "negative": ["n"] * (i % 3)} for i in range(200)]
    mined = tmp_path / "mined.jsonl"
    mined.write_text("".join(json.dumps(r) + "\n" for r in rows))
    kept = [json.loads(line) for line in bench.split_mined(mined, tmp_path / "work").read_text().splitlines()]
    dev = [r for r in rows if bench.is_dev(r["anchor"])]
    assert 20 <= len(dev) <= 60  # about one in five
    assert {r["anchor"] for r in kept} == {r["anchor"] for r in rows} - {r["anchor"] for r in dev}
    assert bench.is_dev("claim 7") == bench.is_dev("claim 7")


def test_pairs_per_step_and_rate(bench, tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text(
        json.dumps({"anchor": "a", "positive": ["x"], "negative": ["y", "z"]})
        + "\n"
        + json.dumps({"anchor": "b", "positive": ["x", "w"], "negative": ["y", "z", "v"]})
        + "\n"
    )
    assert bench._pairs_per_step(data, 4) == 16  # mean group of 4 documents
    data.write_text(json.dumps({"anchor": "a", "positive": "x", "negative": ["y", "z"]}) + "\n")
    assert bench._pairs_per_step(data, 4) == 12  # a single positive as a string (contrastkit mine's layout)
    assert bench._rate([0.0, 1.0, 3.0, 5.0], 10) == pytest.approx(5.0)  # 2 steps of 10 pairs after the first
