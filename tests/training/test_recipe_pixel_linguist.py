"""The Pixel Linguist recipes: the curriculum's shape, and the smoke variant end to end on the shared data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contrastkit.encoders import PixelEncoder, load_encoder
from contrastkit.objectives.temperature import Temperature
from contrastkit.training.batchloss import build_contrastive_loss
from contrastkit.training.curriculum import STATE_FILE, load_curriculum, run_curriculum

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "configs" / "recipes"
DATA = ROOT.parent / "shared" / "data"  # the recipes' ../shared/data, from the repository root
FAMILIES = ["typos", "shuffle", "conditional_shuffle", "words_and_chars"]


@pytest.mark.parametrize("name", ["pixel_linguist.yaml", "pixel_linguist_smoke.yaml"])
def test_recipe_is_the_section_4_curriculum(name: str) -> None:
    plan = load_curriculum(RECIPES / name, ["train.output_dir=/nonexistent/run"])
    assert plan is not None and [s.name for s in plan.stages] == ["visual", "topical", "reasoning"]
    runs = [r for s in plan.stages for r in s.runs]
    for run in runs:  # objective: clip at a fixed tau 0.05
        loss = build_contrastive_loss(run.config.objective, run.config.scale)
        assert loss.objective.info.name == "clip"
        temps = [t for t in loss.modules() if isinstance(t, Temperature)]
        assert len(temps) == 1 and not temps[0].learnable and temps[0].value == pytest.approx(0.05)
    visual, topical, reasoning = plan.stages
    assert visual.averaged and [r.config.views.transform for r in visual.runs] == FAMILIES
    assert {r.config.model.kind for r in visual.runs} == {"pixel"} and visual.runs[0].config.model.path == "scratch"
    assert topical.runs[0].config.views.transform == "wikispan"
    assert topical.runs[0].config.model.path == "/nonexistent/run/00-visual/final"
    assert reasoning.runs[0].config.data.train[0].endswith("snli_triplets/train.jsonl")
    assert reasoning.runs[0].config.data.kind == "pair"


@pytest.mark.skipif(not (DATA / "wiki1m_head").is_dir(), reason="the shared data pack is not available")
def test_smoke_recipe_runs(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)  # the recipe's data paths are relative to the repository root
    result = run_curriculum(load_curriculum(RECIPES / "pixel_linguist_smoke.yaml", [f"train.output_dir={tmp_path}"]))
    assert len(result.trained) == 6 and result.final_model == tmp_path / "02-reasoning" / "final"
    state = json.loads((tmp_path / STATE_FILE).read_text())
    assert state["done"][-3:] == ["00-visual/final", "01-topical", "02-reasoning"]
    model = load_encoder(result.final_model)
    assert isinstance(model, PixelEncoder)
    emb = model.encode(["A man is playing a guitar.", "A woman is slicing an onion."])
    assert emb.shape == (2, 32) and emb.isfinite().all()
    for run in ("00-visual/run-3", "01-topical", "02-reasoning"):  # visual STS-b dev logged at the end of each run
        records = [json.loads(line) for line in (tmp_path / run / "metrics.jsonl").open()]
        assert any("eval/stsb_dev/spearman" in r for r in records)
