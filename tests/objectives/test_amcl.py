"""AMCL against a float64 loop oracle with a fixed temperature network; gradients reach the network."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from contrastkit.objectives import amcl, get  # noqa: F401 - registers amcl
from contrastkit.objectives.base import Status

ETA, TOP = 1e-5, 2.0


def unit(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g, dtype=torch.float64), dim=-1)


def linear_net(d, e, seed=1):
    torch.manual_seed(seed)
    net = nn.Linear(d, e, dtype=torch.float64)
    with torch.no_grad():
        net.weight.mul_(3.0)  # spread the temperatures over their range
    return net


def dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def phi_oracle(net, z):
    W, b = net.weight.tolist(), net.bias.tolist()
    return [dot(row, z) + bk for row, bk in zip(W, b)]


def tau_oracle(net, a, b):
    return ETA + (TOP - ETA) / (1 + math.exp(dot(phi_oracle(net, a), phi_oracle(net, b))))


def omega_oracle(tau, coef):
    return coef * math.log(tau) + 1 / tau


def amcl_oracle(views, net, beta, top_k=None, code_reg=False, queue=None):
    C, _, n, d = views.shape
    directions = []
    for a in (0, 1):
        total = 0.0
        for i in range(n):
            for c in range(C):
                z, zp = views[c, a, i].tolist(), views[c, 1 - a, i].tolist()
                if queue is None:
                    negs = [views[c, v, j].tolist() for v in (a, 1 - a) for j in range(n) if j != i]
                else:
                    negs = [queue[c, j].tolist() for j in range(queue.shape[1])]
                ranked = sorted(negs, key=lambda x, z=z: -dot(z, x))[: (top_k or 1)]
                tau_p = tau_oracle(net, z, zp)
                taus = [tau_oracle(net, z, x) for x in ranked]
                neg = sum(dot(z, x) / t for x, t in zip(ranked, taus)) / len(ranked)
                reg_neg = sum(omega_oracle(t, 1.0 if code_reg else d / 2) for t in taus)
                total += -dot(z, zp) / tau_p + neg + beta * omega_oracle(tau_p, d / 2) - beta * reg_neg
        directions.append(total / n)
    return sum(directions) / 2


@pytest.mark.parametrize(
    ("top_k", "reg"),
    [(None, "table"), (1, "table"), (3, "table"), (3, "code"), (50, "table")],
)
def test_amcl_matches_loop_oracle(top_k, reg):
    views = unit(3, 2, 5, 4, seed=2)
    net = linear_net(4, 6)
    obj = get("amcl", temperature_net=net, beta=0.01, top_k=top_k, negative_regularizer=reg)
    want = amcl_oracle(views, net, 0.01, top_k=top_k, code_reg=reg == "code")
    assert obj(views).item() == pytest.approx(want, rel=1e-10)


def test_amcl_queue_negatives_match_oracle_and_queue_is_constant():
    views = unit(2, 2, 4, 5, seed=3)
    queue = unit(2, 7, 5, seed=4).requires_grad_(True)
    net = linear_net(5, 3, seed=5)
    obj = get("amcl", temperature_net=net, beta=0.1, top_k=2)
    loss = obj(views, queue)
    want = amcl_oracle(views, net, 0.1, top_k=2, queue=queue.detach())
    assert loss.item() == pytest.approx(want, rel=1e-10)
    loss.backward()
    assert queue.grad is None


def test_amcl_gradients_reach_temperature_network_and_match_finite_differences():
    views = unit(2, 2, 4, 3, seed=6).requires_grad_(True)
    net = linear_net(3, 4, seed=7)
    obj = get("amcl", temperature_net=net, beta=0.05)
    loss = obj(views)
    loss.backward()
    assert net.weight.grad is not None and net.weight.grad.abs().sum() > 0
    assert torch.isfinite(net.weight.grad).all() and torch.isfinite(views.grad).all()
    assert any(p.requires_grad for p in obj.parameters())

    def as_function(weight, bias, v):
        fresh = nn.Linear(3, 4, dtype=torch.float64)
        del fresh.weight, fresh.bias
        fresh.weight, fresh.bias = weight, bias
        return get("amcl", temperature_net=fresh, beta=0.05)(v)

    inputs = (net.weight.detach().clone().requires_grad_(True), net.bias.detach().clone().requires_grad_(True), views)
    assert torch.autograd.gradcheck(as_function, inputs)


def test_amcl_sums_over_heads():
    views = unit(3, 2, 5, 4, seed=8)
    obj = get("amcl", temperature_net=linear_net(4, 2))
    per_head = sum(obj(views[c : c + 1]) for c in range(3))
    assert obj(views).item() == pytest.approx(per_head.item(), rel=1e-12)


def test_amcl_temperature_range_and_monotonicity():
    obj = get("amcl", dim=4)
    score = torch.linspace(-8, 8, 11, dtype=torch.float64)
    tau = obj.pair_temperature(score[:, None], torch.ones(11, 1, dtype=torch.float64))
    assert (tau > ETA).all() and (tau < TOP).all()
    assert (tau[1:] < tau[:-1]).all()  # similar pairs (high phi score) get a low temperature


def test_amcl_default_network_and_errors():
    obj = get("amcl", dim=8)
    assert obj.info.status is Status.CODE and obj.beta == 0.01
    loss = obj(unit(3, 2, 4, 8, seed=9).float())
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in obj.temperature_net.parameters())
    with pytest.raises(ValueError, match="C, 2, n"):
        obj(unit(2, 4, 8))
    with pytest.raises(ValueError, match="n >= 2"):
        obj(unit(1, 2, 1, 8).float())
    with pytest.raises(ValueError, match="negative_regularizer"):
        get("amcl", negative_regularizer="paper")
