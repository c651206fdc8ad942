"""AdamW parameter groups (decay / no decay / learnable temperature) and the warmup + decay schedules."""

import itertools
import math

import pytest
import torch
from torch import nn

from contrastkit import ContrastiveLoss
from contrastkit.training.config import OptimConfig
from contrastkit.training.optim import LRSchedule, build_optimizer, split_parameters, warmup_steps


def test_groups_decay_no_decay_and_temperature() -> None:
    model = nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3))
    model[0].bias.requires_grad_(False)  # frozen: left out
    loss = ContrastiveLoss("infonce", temperature=0.05, learnable_temperature=True)
    groups = split_parameters(model, loss)
    assert [tuple(p.shape) for p in groups.decay] == [(3, 4)]
    assert [tuple(p.shape) for p in groups.no_decay] == [(3,), (3,)]  # LayerNorm weight and bias
    assert groups.loss == [loss.objective.temperature.log_scale]

    opt = build_optimizer(OptimConfig(lr=1e-3, weight_decay=0.1, temperature_lr=1e-2), model, loss)
    by_name = {g["name"]: g for g in opt.param_groups}
    assert by_name["decay"]["weight_decay"] == 0.1 and by_name["decay"]["lr"] == 1e-3
    assert by_name["no_decay"]["weight_decay"] == 0.0
    assert by_name["loss"]["weight_decay"] == 0.0 and by_name["loss"]["lr"] == 1e-2
    assert all(g["initial_lr"] == g["lr"] for g in opt.param_groups)


def test_fixed_temperature_is_not_trained() -> None:
    model = nn.Linear(2, 2)
    opt = build_optimizer(OptimConfig(), model, ContrastiveLoss("infonce", temperature=0.05))
    assert {g["name"] for g in opt.param_groups} == {"decay", "no_decay"}


def test_nothing_to_train_is_an_error() -> None:
    model = nn.Linear(2, 2).requires_grad_(False)
    with pytest.raises(ValueError, match="nothing to train"):
        build_optimizer(OptimConfig(), model, None)


def expected(kind: str, s: int, total: int, warm: int, m: float) -> float:
    if s < warm:
        return (s + 1) / warm
    p = (s - warm) / (total - warm)
    return {"constant": 1.0, "linear": 1 - p * (1 - m), "cosine": m + (1 - m) * (1 + math.cos(math.pi * p)) / 2}[kind]


@pytest.mark.parametrize("kind", ["constant", "linear", "cosine"])
@pytest.mark.parametrize("min_ratio", [0.0, 0.1])
def test_schedule_values(kind, min_ratio) -> None:
    cfg = OptimConfig(schedule=kind, warmup_steps=3, min_lr_ratio=min_ratio)
    sched = LRSchedule(cfg, total_steps=13)
    values = [sched.factor(s) for s in range(13)]
    assert values == pytest.approx([expected(kind, s, 13, 3, min_ratio) for s in range(13)])
    assert values[:3] == pytest.approx([1 / 3, 2 / 3, 1.0])  # warmup reaches the full rate on its last step
    assert values[3] == pytest.approx(1.0)
    assert all(v > 0 for v in values)  # no step is wasted at lr 0
    if kind != "constant":
        assert all(a >= b for a, b in itertools.pairwise(values[3:]))  # non-increasing after warmup


def test_warmup_ratio_and_apply() -> None:
    cfg = OptimConfig(lr=0.5, warmup_ratio=0.25, schedule="linear")
    assert warmup_steps(cfg, 10) == 3  # ceil(2.5)
    with pytest.raises(ValueError, match="warmup"):  # both keys at once is a conflict (issue 14), not a precedence
        OptimConfig(warmup_steps=4, warmup_ratio=0.9)
    opt = build_optimizer(cfg, nn.Linear(2, 2), None)
    sched = LRSchedule(cfg, total_steps=10)
    factor = sched.apply(opt, 0)
    assert factor == pytest.approx(1 / 3)
    assert all(g["lr"] == pytest.approx(0.5 / 3) for g in opt.param_groups)


def test_schedule_drives_adamw_steps() -> None:
    torch.manual_seed(0)
    model = nn.Linear(3, 1, bias=False)
    cfg = OptimConfig(lr=0.1, weight_decay=0.0, schedule="constant", warmup_steps=2)
    opt = build_optimizer(cfg, model, None)
    sched = LRSchedule(cfg, total_steps=4)
    before = model.weight.detach().clone()
    sched.apply(opt, 0)
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    # AdamW's first step moves each weight by lr * sign(grad) (up to eps): here lr = 0.1 * 1/2
    assert torch.allclose(before - model.weight.detach(), torch.full((1, 3), 0.05), atol=1e-6)
