"""Temperature: a capped learnable temperature keeps a live gradient; a fixed one is used exactly as given."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from oracles import logits, r1, to_lists, transpose

from contrastkit import ContrastiveLoss
from contrastkit.objectives import Temperature, clamp_temperatures, get
from contrastkit.objectives.targets import Targets


def _problem(n: int = 6, d: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(n, d, generator=gen, dtype=torch.float64)
    c = torch.randn(n, d, generator=gen, dtype=torch.float64)
    return a, c


def _worst_column_targets(a: torch.Tensor, c: torch.Tensor) -> Targets:
    """Each row's positive is its least similar column: the loss asks for a smaller logit scale."""
    S = F.normalize(a, dim=-1) @ F.normalize(c, dim=-1).T
    return Targets.from_index(S.argmin(-1), num_cols=c.shape[0])


def test_at_the_cap_the_gradient_is_live_and_the_temperature_moves_back_below_it() -> None:
    tau = Temperature(0.01, learnable=True, max_scale=100.0)
    assert float(tau.scale().detach()) == 100.0  # the float32 parameter is a hair above log(100); the value is capped
    tau.scale().backward()  # minimising the scale itself: the gradient asks for a smaller one
    assert float(tau.log_scale.grad) == pytest.approx(100.0)  # d exp(t) / dt at the cap
    torch.optim.SGD(tau.parameters(), lr=1e-3).step()
    assert float(tau.scale().detach()) < 100.0


def test_a_parameter_above_the_cap_is_clamped_back_after_the_step() -> None:
    tau = Temperature(0.05, learnable=True, max_scale=100.0)
    with torch.no_grad():
        tau.log_scale.fill_(math.log(500.0))
    assert float(tau.scale().detach()) == 100.0
    (-tau.scale()).backward()  # asks for a larger scale: the gradient is live, as at the cap
    assert float(tau.log_scale.grad) == pytest.approx(-100.0)
    tau.clamp_()
    assert float(tau.log_scale.detach()) == pytest.approx(math.log(100.0), abs=1e-6)
    fixed = Temperature(0.005)
    clamp_temperatures(torch.nn.ModuleList([tau, fixed]))  # a fixed temperature has no cap: left alone
    assert float(fixed.scale()) == pytest.approx(200.0, rel=1e-14)


@pytest.mark.parametrize("tile_size", [None, 2])
def test_clip_at_temperature_001_is_not_locked_at_step_1(tile_size) -> None:
    a, c = _problem()
    loss_fn = ContrastiveLoss("clip", temperature=0.01, tile_size=tile_size)
    param = loss_fn.objective.temperature.log_scale
    targets = _worst_column_targets(a, c)
    loss_fn(a, c, targets).backward()
    assert float(param.grad) > 0  # non-zero: the temperature can move
    torch.optim.SGD([param], lr=1e-3).step()
    assert float(loss_fn.objective.scale().detach()) < 100.0


def test_clip_gradient_at_the_cap_equals_the_derivative_at_scale_100() -> None:
    a, c = _problem(seed=1)
    targets = Targets.diagonal(6)
    obj = get("clip", temperature=0.01)
    S = F.normalize(a, dim=-1) @ F.normalize(c, dim=-1).T
    obj(S, targets).backward()
    eye = [[float(i == j) for j in range(6)] for i in range(6)]
    every = [[True] * 6 for _ in range(6)]

    def oracle(scale: float) -> float:
        L = logits(to_lists(S), scale)
        return 0.5 * (r1(L, eye, every) + r1(transpose(L), eye, every))

    eps = 1e-6
    numeric = (oracle(100.0 * math.exp(eps)) - oracle(100.0 * math.exp(-eps))) / (2 * eps)
    assert float(obj.temperature.log_scale.grad) == pytest.approx(numeric, rel=1e-4)


def test_fixed_temperature_below_001_is_used_exactly() -> None:
    a, c = _problem(seed=2)
    targets = Targets.diagonal(6)
    loss_fn = ContrastiveLoss("clip", temperature=0.005, learnable_temperature=False)
    assert float(loss_fn.objective.scale()) == pytest.approx(200.0, rel=1e-14)
    S = to_lists(F.normalize(a, dim=-1) @ F.normalize(c, dim=-1).T)
    eye = [[float(i == j) for j in range(6)] for i in range(6)]
    every = [[True] * 6 for _ in range(6)]
    L = logits(S, 200.0)
    expected = 0.5 * (r1(L, eye, every) + r1(transpose(L), eye, every))
    assert float(loss_fn(a, c, targets)) == pytest.approx(expected, rel=1e-12)


def test_a_learnable_temperature_below_its_floor_is_refused() -> None:
    with pytest.raises(ValueError, match=r"0\.005.*1/max_scale = 0\.01"):
        get("clip", temperature=0.005)
    with pytest.raises(ValueError, match="max_scale"):
        Temperature(0.005, max_scale=100.0)
    assert float(get("clip", temperature=0.005, max_scale=None).scale().detach()) == pytest.approx(200.0)
