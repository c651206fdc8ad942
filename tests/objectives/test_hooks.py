"""Hooks for unavailable formulas: the cement margin hook and the DebCSE propensity sampler."""

import math

import pytest
import torch
import torch.nn.functional as F

from contrastkit import ContrastiveLoss
from contrastkit.objectives import Kind, Status, Targets, get, hooks  # noqa: F401 - hooks registers objectives
from contrastkit.objectives.hooks import PropensitySampler, Triplets

# ----------------------------------------------------------------------------- cement


def zero_margin(S, targets):
    return torch.zeros_like(S)


def oracle_margin_r1(S, B, pos_col, tau):
    rows = []
    for i, row in enumerate(S):
        logits = [v / tau + b for v, b in zip(row, B[i])]
        rows.append(math.log(sum(math.exp(v) for v in logits)) - logits[pos_col[i]])
    return sum(rows) / len(rows)


def test_cement_with_zero_margin_equals_infonce() -> None:
    S = torch.randn(5, 7, dtype=torch.float64)
    t = Targets.from_index(torch.tensor([0, 2, 1, 6, -1]), num_cols=7)  # the last row has no positive: dropped
    cement = get("cement", margin=zero_margin, temperature=0.1)
    assert cement(S, t).item() == pytest.approx(get("infonce", temperature=0.1)(S, t).item(), rel=1e-12)


def test_cement_applies_the_margin_function_with_its_inputs() -> None:
    # a CosFace-like example margin: subtract m * score of the column from each positive logit (not Cement's formula)
    def margin(S, targets, col_scores):
        W, _, _ = targets.block(dtype=S.dtype)
        return -(W > 0).to(S.dtype) * col_scores[None, :]

    g = torch.Generator().manual_seed(0)
    S = (torch.rand(4, 4, generator=g, dtype=torch.float64) * 2 - 1).requires_grad_()
    scores = torch.tensor([0.5, 1.0, 0.0, 2.0], dtype=torch.float64)
    loss = get("cement", margin=margin, temperature=0.2)(S, Targets.diagonal(4), scores)
    B = [[-scores[c].item() if r == c else 0.0 for c in range(4)] for r in range(4)]
    assert loss.item() == pytest.approx(oracle_margin_r1(S.tolist(), B, [0, 1, 2, 3], 0.2), rel=1e-10)
    loss.backward()
    assert torch.isfinite(S.grad).all()


def test_cement_refuses_to_be_a_preset() -> None:
    with pytest.raises(TypeError, match="margin"):
        get("cement")
    with pytest.raises(TypeError, match="callable"):
        get("cement", margin=0.2)
    cls = type(get("cement", margin=zero_margin))
    assert cls.info.status is Status.UNAVAILABLE and cls.info.kind is Kind.HOOK
    assert "unverified" in (cls.__doc__ or "").lower()
    with pytest.raises(TypeError, match="directly"):
        ContrastiveLoss(get("cement", margin=zero_margin))
    with pytest.raises(ValueError, match="margin function returned"):
        get("cement", margin=lambda S, t: torch.zeros(2))(torch.zeros(3, 3), Targets.diagonal(3))


# ----------------------------------------------------------------------------- DebCSE sampler


def _propensity(table):
    return lambda ids: table[ids]


def _pool(A, N, seed):
    g = torch.Generator().manual_seed(seed)
    table = torch.rand(N, N, generator=g, dtype=torch.float64) + 0.1
    return table, torch.ones(A, N, dtype=torch.bool)


def test_sampler_is_deterministic_by_seed() -> None:
    table, pool = _pool(6, 6, 0)
    sampler = PropensitySampler(_propensity(table))
    ids = torch.arange(6)
    a = sampler.sample(ids, pool, pool, generator=torch.Generator().manual_seed(3))
    b = sampler.sample(ids, pool, pool, generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    draws = {
        tuple(sampler.sample(ids, pool, pool, generator=torch.Generator().manual_seed(s)).negative.tolist())
        for s in range(5)
    }
    assert len(draws) > 1


def test_sampler_never_returns_the_anchor_as_its_negative() -> None:
    N = 4
    table, pool = _pool(N, N, 1)
    table.fill_diagonal_(1e-6)  # the anchor itself would be by far the most likely draw
    sampler = PropensitySampler(_propensity(table))
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        trip = sampler.sample(torch.arange(N), pool, pool, generator=g)
        assert (trip.negative != trip.anchor).all()
    only_self = torch.eye(N, dtype=torch.bool)
    trip = sampler.sample(torch.arange(N), pool, only_self, generator=g)
    assert trip.anchor.numel() == 0  # the only eligible negative was the anchor: no triplet


def test_sampler_draws_inverse_propensity_and_respects_pools() -> None:
    # anchor 0; positives eligible {1, 2} with propensities 1 and 3 -> probabilities 3/4 and 1/4
    table = torch.tensor([[1.0, 1.0, 3.0, 2.0]], dtype=torch.float64)
    draws = 4000  # the same anchor 0, many times, in one call
    positive_pool = torch.tensor([[False, True, True, False]]).expand(draws, 4)
    negative_pool = torch.tensor([[True, False, False, True]]).expand(draws, 4)
    sampler = PropensitySampler(lambda ids: table[ids])
    trip = sampler.sample(
        torch.zeros(draws, dtype=torch.long), positive_pool, negative_pool, generator=torch.Generator().manual_seed(0)
    )
    pos, neg = trip.positive, trip.negative
    assert set(pos.tolist()) == {1, 2} and set(neg.tolist()) == {3}  # 0 is the anchor: excluded as a negative
    assert (pos == 1).double().mean().item() == pytest.approx(0.75, abs=0.03)


def test_sampler_skips_empty_pools_and_checks_propensities() -> None:
    table, pool = _pool(3, 5, 2)
    sampler = PropensitySampler(lambda ids: table[ids, :5])
    positive_pool = pool.clone()
    positive_pool[1] = False
    trip = sampler.sample(torch.tensor([0, 1, 2]), positive_pool, pool, generator=torch.Generator().manual_seed(0))
    assert trip.anchor.tolist() == [0, 2]
    bad = PropensitySampler(lambda ids: torch.zeros(len(ids), 5))
    with pytest.raises(ValueError, match="> 0"):
        bad.sample(torch.tensor([0]), pool[:1], pool[:1])


def test_debcse_is_supervised_simcse_on_the_triplets() -> None:
    emb = F.normalize(torch.randn(8, 5, dtype=torch.float64), dim=-1)
    table, pool = _pool(8, 8, 3)
    trip = PropensitySampler(_propensity(table)).sample(
        torch.arange(8), pool, pool, generator=torch.Generator().manual_seed(1)
    )
    assert isinstance(trip, Triplets)
    views = trip.gather(emb)
    assert views.shape == (3, 8, 5)
    loss = get("debcse")(views)
    assert loss.item() == pytest.approx(get("simcse_sup")(views).item(), rel=1e-12)
    # an independent check of the delegate: R1 over [cos(H, H+) | cos(H, H-)] with tau = 0.05
    h, hp, hn = views.tolist()
    rows = []
    for i in range(8):
        logits = [sum(a * b for a, b in zip(h[i], c)) / 0.05 for c in hp + hn]
        rows.append(math.log(sum(math.exp(v) for v in logits)) - logits[i])
    assert loss.item() == pytest.approx(sum(rows) / 8, rel=1e-10)
    info = get("debcse").info
    assert info.status is Status.UNAVAILABLE and "no reference formula" in info.notes
