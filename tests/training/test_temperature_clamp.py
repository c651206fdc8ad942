"""The trainer's optimizer clamps a capped learnable temperature after each step (as open_clip does)."""

from __future__ import annotations

import math

import torch
from training_helpers import TinyEncoder, make_pairs

from contrastkit import ContrastiveLoss
from contrastkit.training import load_config, train
from contrastkit.training.config import OptimConfig
from contrastkit.training.logging import read_metrics
from contrastkit.training.optim import build_optimizer


def test_a_step_that_pushes_the_scale_past_the_cap_is_clamped_back() -> None:
    loss = ContrastiveLoss("clip", temperature=0.02)
    optimizer = build_optimizer(OptimConfig(lr=1.0), torch.nn.Linear(2, 2), loss)
    param = loss.objective.temperature.log_scale
    param.grad = torch.tensor(-1.0)  # asks for a larger scale: AdamW moves t up by about lr = 1
    optimizer.step()
    assert float(param.detach()) <= math.log(100.0) + 1e-6
    assert float(loss.objective.scale().detach()) == 100.0


def test_clip_at_temperature_001_trains_its_temperature(tmp_path) -> None:
    overrides = [
        f"train.output_dir={tmp_path / 'run'}",
        "data.batch_size=8",
        "objective.name=clip",
        "objective.temperature=0.01",
        "optim.temperature_lr=0.05",
        "train.steps=3",
        "train.log_every=1",
        "train.progress=false",
    ]
    train(load_config(None, overrides), encoder=TinyEncoder(), examples=make_pairs(24))
    temps = [r["temperature"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl")]
    assert all(t >= 0.01 * (1 - 1e-6) for t in temps)  # never past the cap
    assert temps[-1] > 0.0101  # not locked at the cap from step 1
