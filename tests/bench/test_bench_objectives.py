"""Smoke test of bench/objectives.py: the per-configuration core runs in-process at a tiny size."""

from __future__ import annotations

import math

import pytest
from bench_helpers import load_bench


@pytest.fixture(scope="module")
def bench():
    with pytest.MonkeyPatch.context() as mp:
        yield load_bench("bench_objectives", "objectives.py", mp)


@pytest.mark.parametrize(("objective", "positives"), [("infonce", 1), ("summarglh", 2)])
def test_dense_and_tiled_agree_with_finite_timings(bench, objective, positives):
    runs = {
        mode: bench.run_config(
            bench.Config(
                mode,
                256,
                d=32,
                tile=96 if mode == "tiled" else None,
                objective=objective,
                positives=positives,
                repeats=2,
            )
        )
        for mode in ("dense", "tiled")
    }
    for r in runs.values():
        assert len(r["times_s"]) == 2
        assert all(math.isfinite(t) and t > 0 for t in r["times_s"])
        assert math.isfinite(r["gflops"]) and r["gflops"] > 0
        assert r["peak_extra_bytes"] >= 0
        assert math.isfinite(r["loss"]) and r["loss"] > 0
    dense, tiled = runs["dense"], runs["tiled"]
    assert tiled["loss"] == pytest.approx(dense["loss"], rel=1e-5)
    assert tiled["grad_norms"] == pytest.approx(dense["grad_norms"], rel=1e-4)


def test_flop_count_and_target_report(bench):
    assert bench.step_flops(4096, 384) == 6 * 4096**2 * 384
    result = {"objective": "infonce", "mode": "tiled", "tile": 256, "n": 8192, "time_s": 1.0, "gflops": 60.0}
    dense = {**result, "mode": "dense", "tile": None, "time_s": 0.5}
    lines = bench.evaluate_targets([result, dense], ref=100.0, tile=256, ratio_n=8192)
    assert any("FAIL" in line and "2.00x" in line for line in lines)
    assert any("PASS" in line and "60%" in line for line in lines)
