"""Smoke test of bench/perception.py: the image part on a slice of MNIST, the report, the data re-pointing."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from bench_helpers import load_bench

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="module")
def bench():
    with pytest.MonkeyPatch.context() as mp:
        yield load_bench("bench_perception", "perception.py", mp)


def _args(**kw) -> argparse.Namespace:
    base = {"data": DATA, "steps": 2, "batch_size": 8, "sts_split": "test", "image_steps": 2, "mnist_train": 8000}
    return argparse.Namespace(**{**base, "limit": 200, "n_shot": 4, "text_model": "all-MiniLM-L6-v2", **kw})


def test_repoint_moves_the_recipe_data(bench, tmp_path) -> None:
    from contrastkit.training.curriculum import load_curriculum

    plan = load_curriculum(bench.RECIPE, [f"train.output_dir={tmp_path}"])
    config = bench._repoint(plan.stages[2].runs[0].config, Path("/data/pack"))
    assert config.data.train == ("/data/pack/snli_triplets/train.jsonl",)


def test_render_reports_both_parts(bench) -> None:
    text = bench.Part({"untrained pixel model": 1.5, "after stage 00-visual": 12.25}, {"train": (3.0, 5.0)}, 0.5)
    image = bench.Part({"knn: raw pixels": 90.0}, {"train image-label": (2.0, 3.0)}, 0.1, (400, 400))
    report = bench.render(text, image, command="python bench/perception.py", args=_args(), info={"cpu": "x"})
    assert "| after stage 00-visual | 12.25 |" in report and "| knn: raw pixels | 90.00 |" in report
    assert (
        "first 400 images train / 400 test" in report
        and "4-shot" in report
        and "Command: `python bench/perception.py`" in report
    )


@pytest.mark.filterwarnings("ignore:BatchSampler epoch")
@pytest.mark.skipif(not (DATA / "mnist_test").is_dir(), reason="the shared data pack is not available")
def test_image_part_runs(bench, tmp_path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(ROOT / "tests" / "training"))
    from training_helpers import tiny_bert

    text_model = tiny_bert(tmp_path / "bert")  # a small text tower: the part's flow, not MiniLM's cost
    part = bench.images(_args(text_model=str(text_model)), tmp_path)
    assert part.sizes == (200, 200)
    for probe in ("knn", "linear"):
        for model in ("raw pixels", "untrained image tower", "trained image tower"):
            assert 0.0 <= part.scores[f"{probe}: {model}"] <= 100.0
    assert part.scores["knn: raw pixels"] > 50  # MNIST pixels are a strong kNN baseline
    assert set(part.seconds) == {"train image-label"}
