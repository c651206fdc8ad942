"""Score (list) objectives in training: ``cosent`` / ``codiemb`` on graded pairs, routed per dataset beside a
matrix objective; every logged loss equals the dataset's own objective on its batch; graded data is required."""

from __future__ import annotations

import json
import random

import pytest
import torch
from training_helpers import WORDS, TinyEncoder, make_pairs, state_of, write_jsonl

from contrastkit import ContrastiveLoss
from contrastkit.data import collate
from contrastkit.objectives.registry import REGISTRY
from contrastkit.training import Callback, ConfigError, load_config, train
from contrastkit.training.logging import read_metrics
from contrastkit.training.sources import build_data_sampler, load_sources


class Weights(Callback):
    def __init__(self) -> None:
        self.states = {}

    def on_step_end(self, ctx) -> None:
        self.states[ctx.step] = state_of(ctx.encoder)


def graded(path, n: int = 24):
    rng = random.Random(5)
    lines = ["sentence1\tsentence2\tscore"]
    for i in range(n):
        a, b = rng.sample(WORDS, 3), rng.sample(WORDS, 3)
        lines.append(f"{' '.join(a)} s{i}\t{' '.join(b)}\t{rng.uniform(0, 5):.2f}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("sts_objective", ["cosent", "codiemb"])
def test_each_batch_gets_its_datasets_objective(tmp_path, sts_objective):
    sts = graded(tmp_path / "sts.tsv")
    pairs = write_jsonl(make_pairs(16, seed=1), tmp_path / "pairs.jsonl")
    datasets = [
        {"name": "sts", "train": str(sts), "kind": "graded", "objective": {"name": sts_objective, "temperature": 0.05}},
        {"name": "pairs", "train": str(pairs)},
    ]
    cfg = load_config(None, [
        f"train.output_dir={tmp_path / 'run'}", f"data.datasets={json.dumps(datasets)}", "data.batch_size=4",
        "data.mixing=round_robin", "objective.temperature=0.05", "optim.lr=1e-2", "train.steps=6",
        "train.progress=false", "train.log_every=1", "train.checkpoint_every=0",
    ])  # fmt: skip
    weights = Weights()
    train(cfg, encoder=TinyEncoder(dropout=0.0), callbacks=[weights])
    records = read_metrics(tmp_path / "run" / "metrics.jsonl")
    sources = load_sources(cfg.data)
    sampler = build_data_sampler(cfg.data, sources)
    sts_loss = REGISTRY.get(sts_objective, temperature=0.05)
    infonce = ContrastiveLoss("infonce", temperature=0.05)
    encoder = TinyEncoder(dropout=0.0)
    for record in records:
        d, indices = sampler.next_batch()
        batch = collate([sources[d].examples[i] for i in indices])
        if record["step"] > 1:
            encoder.load_state_dict(weights.states[record["step"] - 1])
        with torch.no_grad():
            a = encoder(encoder.tokenize(batch.anchors))
            p = encoder(encoder.tokenize([ex.positives[0] for ex in batch.examples]))
            pred = torch.nn.functional.normalize(a, dim=-1).mul(torch.nn.functional.normalize(p, dim=-1)).sum(-1)
            gold = torch.tensor([float(ex.score) for ex in batch.examples]) if d == 0 else None
            expected = float(sts_loss(pred, gold)) if d == 0 else float(infonce(a, p, batch.targets()))
        assert record["dataset"] == sources[d].name
        assert record["loss"] == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_a_score_objective_needs_graded_pairs(tmp_path):
    pairs = write_jsonl(make_pairs(8), tmp_path / "pairs.jsonl")
    cfg = load_config(None, [
        f"train.output_dir={tmp_path / 'run'}", f"data.train={pairs}", "data.batch_size=4", "objective.name=cosent",
        "train.steps=1", "train.progress=false",
    ])  # fmt: skip
    with pytest.raises(ConfigError, match=r"^objective\.name: 'cosent' trains on graded pairs"):
        train(cfg, encoder=TinyEncoder())
    assert not (tmp_path / "run").exists()
