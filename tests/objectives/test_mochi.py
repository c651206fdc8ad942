"""MoCHi against a float64 loop oracle with explicit draws; MoCo reduction; gradient reaches only q."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from contrastkit.objectives import get, mochi  # noqa: F401 - registers mochi
from contrastkit.objectives.base import Kind, Status
from contrastkit.objectives.mochi import MochiDraws, draw_mochi, moco_loss


def unit(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g, dtype=torch.float64), dim=-1)


def tau_of(obj):
    return 1.0 / obj.temperature.scale().double().item()


def dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def normalise(v):
    norm = math.sqrt(dot(v, v))
    return [x / norm for x in v]


def synthetic_oracle(q, queue, num_hard, draws, i):
    """Row i's type-1 and type-2 synthetic negatives as lists of floats."""
    ranked = sorted(range(len(queue)), key=lambda j: -dot(q, queue[j]))[:num_hard]
    hard = [queue[j] for j in ranked]
    H = []
    for (a, b), alpha in zip(draws.pairs[i].tolist(), draws.alpha[i].tolist()):
        H.append(normalise([alpha * x + (1 - alpha) * y for x, y in zip(hard[a], hard[b])]))
    H2 = []
    for c, beta in zip(draws.mix_index[i].tolist(), draws.beta[i].tolist()):
        H2.append(normalise([beta * x + (1 - beta) * y for x, y in zip(q, hard[c])]))
    return H, H2


def mochi_oracle(query, key, queue, tau, num_hard, draws=None):
    Q = queue.tolist()
    total = 0.0
    for i, q in enumerate(query.tolist()):
        pos = dot(q, key[i].tolist()) / tau
        logits = [pos] + [dot(q, n) / tau for n in Q]
        if draws is not None:
            H, H2 = synthetic_oracle(q, Q, num_hard, draws, i)
            logits += [dot(q, h) / tau for h in H + H2]
        total += math.log(sum(math.exp(x) for x in logits)) - pos
    return total / len(query)


def inputs(n=4, d=5, K=9, seed=0):
    return unit(n, d, seed=seed), unit(n, d, seed=seed + 1), unit(K, d, seed=seed + 2)


def test_mochi_without_mixing_is_moco():
    q, k, Q = inputs()
    obj = get("mochi", temperature=0.2, num_mix=0, num_query_mix=0)
    loss = obj(q, k, Q)
    tau = tau_of(obj)
    assert loss.item() == pytest.approx(mochi_oracle(q, k, Q, tau, 0), rel=1e-12)
    assert moco_loss(q, k, Q, temperature=tau).item() == pytest.approx(loss.item(), rel=1e-12)
    logits = torch.cat([(q * k).sum(-1, keepdim=True), q @ Q.T], 1) / tau
    ce = F.cross_entropy(logits, torch.zeros(4, dtype=torch.long))
    assert ce.item() == pytest.approx(loss.item(), rel=1e-12)


def test_mochi_empty_draws_equal_moco():
    q, k, Q = inputs(seed=3)
    none = torch.zeros(4, 0, dtype=torch.long)
    empty = MochiDraws(torch.zeros(4, 0, 2, dtype=torch.long), none.double(), none, none.double())
    obj = get("mochi", num_hard=5)
    assert obj(q, k, Q, draws=empty).item() == pytest.approx(moco_loss(q, k, Q, temperature=tau_of(obj)).item())


@pytest.mark.parametrize(("num_hard", "s", "s2"), [(5, 3, 2), (9, 4, 0), (2, 1, 3), (20, 2, 2)])
def test_mochi_explicit_draws_match_loop_oracle(num_hard, s, s2):
    q, k, Q = inputs(seed=num_hard)
    N = min(num_hard, Q.shape[0])
    draws = draw_mochi(4, N, s, s2, torch.Generator().manual_seed(7))
    obj = get("mochi", num_hard=num_hard, num_mix=s, num_query_mix=s2)
    want = mochi_oracle(q, k, Q, tau_of(obj), N, draws)
    assert obj(q, k, Q, draws=draws).item() == pytest.approx(want, rel=1e-12)


def test_mochi_generator_draws_are_reproducible_and_match_oracle():
    q, k, Q = inputs(seed=11)
    obj = get("mochi", num_hard=6, num_mix=5, num_query_mix=2)
    a = obj(q, k, Q, generator=torch.Generator().manual_seed(3))
    b = obj(q, k, Q, generator=torch.Generator().manual_seed(3))
    draws = obj.draw(4, Q.shape[0], torch.Generator().manual_seed(3))
    assert a.item() == b.item()
    assert a.item() == pytest.approx(mochi_oracle(q, k, Q, tau_of(obj), 6, draws), rel=1e-12)
    seeded = get("mochi", num_hard=6, num_mix=5, num_query_mix=2, seed=1)
    again = get("mochi", num_hard=6, num_mix=5, num_query_mix=2, seed=1)
    assert seeded(q, k, Q).item() == again(q, k, Q).item()


def test_mochi_gradient_reaches_only_q_through_q_dot_h():
    q0, k, Q = inputs(seed=20)
    q = q0.clone().requires_grad_(True)
    key, queue = k.clone().requires_grad_(True), Q.clone().requires_grad_(True)
    draws = draw_mochi(4, 5, 3, 3, torch.Generator().manual_seed(1))
    obj = get("mochi", num_hard=5, num_mix=3, num_query_mix=3)
    obj(q, key, queue, draws=draws).backward()
    assert key.grad is None and queue.grad is None
    # Oracle gradient: the synthetic points (and the q inside h') are constants.
    tau = tau_of(obj)
    rows = []
    for i, qi in enumerate(q0.tolist()):
        H, H2 = synthetic_oracle(qi, Q.tolist(), 5, draws, i)
        rows.append(torch.tensor(H + H2, dtype=torch.float64))
    q_ref = q0.clone().requires_grad_(True)
    logits = [torch.cat([(q_ref[i] * k[i]).sum()[None], Q @ q_ref[i], rows[i] @ q_ref[i]]) / tau for i in range(4)]
    ref = sum(torch.logsumexp(row, 0) - row[0] for row in logits) / 4
    ref.backward()
    torch.testing.assert_close(q.grad, q_ref.grad, rtol=1e-10, atol=1e-12)


def test_draws_are_distinct_pairs_in_range():
    draws = draw_mochi(50, 4, 30, 20, torch.Generator().manual_seed(0))
    a, b = draws.pairs.unbind(-1)
    assert (a != b).all() and a.max() < 4 and b.max() < 4 and a.min() >= 0 and b.min() >= 0
    assert {int(x) for x in b.unique()} == {0, 1, 2, 3}
    assert (draws.alpha >= 0).all() and (draws.alpha < 1).all()
    assert (draws.beta >= 0).all() and (draws.beta < 0.5).all() and draws.beta.max() > 0.4


def test_mochi_errors_and_info():
    q, k, Q = inputs()
    obj = get("mochi", num_hard=3, num_mix=1, num_query_mix=0)
    bad = MochiDraws(torch.tensor([[[0, 3]]] * 4), torch.rand(4, 1), torch.zeros(4, 0).long(), torch.zeros(4, 0))
    with pytest.raises(ValueError, match="hard set"):
        obj(q, k, Q, draws=bad)
    with pytest.raises(ValueError, match="at least 2"):
        draw_mochi(2, 1, 1, 0)
    with pytest.raises(ValueError, match="query"):
        obj(q, k[:2], Q)
    assert obj.info.kind is Kind.QUEUE and obj.info.status is Status.PAPER and obj.info.default_temperature == 0.2
