"""CoDiEmb objectives: cosent, codiemb (STS mix) and codiemb_ir (slot-wise InfoNCE) against loop oracles."""

import math

import pytest
import torch
import torch.nn.functional as F

from contrastkit import ContrastiveLoss
from contrastkit.objectives import Kind, Status, get, lists, sts  # noqa: F401 - sts registers the objectives
from contrastkit.objectives.sts import STSTerms

# ----------------------------------------------------------------------------- STS


def oracle_cosent(s, y, tau=0.05):
    total = 1.0
    for a in range(len(s)):
        for b in range(len(s)):
            if y[a] > y[b]:
                total += math.exp((s[b] - s[a]) / tau)
    return math.log(total)


def _scores(seed, n=8):
    g = torch.Generator().manual_seed(seed)
    pred = torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1
    gold = torch.randint(0, 6, (n,), generator=g).to(torch.float64)
    return pred, gold


def test_cosent_objective_matches_oracle() -> None:
    pred, gold = _scores(0)
    loss = get("cosent")(pred, gold)
    assert loss.item() == pytest.approx(oracle_cosent(pred.tolist(), gold.tolist()), rel=1e-10)
    assert get("cosent", temperature=0.5)(pred, gold).item() == pytest.approx(
        oracle_cosent(pred.tolist(), gold.tolist(), tau=0.5), rel=1e-10
    )
    info = get("cosent").info
    assert info.status is Status.CODE and info.kind is Kind.SCORES and info.default_temperature == 0.05


@pytest.mark.parametrize("seed", [0, 1])
def test_codiemb_default_mix_is_weighted_sum(seed) -> None:
    pred, gold = _scores(seed)
    obj = get("codiemb")
    expected = (
        0.5 * lists.pro_loss(pred, gold, tau=0.05)
        + 2.0 * lists.pearson_loss(pred, gold)
        + 5.0 * lists.rankkl_loss(pred, gold, tau=0.05)
    )
    assert obj(pred, gold).item() == pytest.approx(expected.item(), rel=1e-12)
    terms = obj.terms(pred, gold)
    assert isinstance(terms, STSTerms) and terms.cosent is None
    assert terms.pearson.item() == pytest.approx(lists.pearson_loss(pred, gold).item(), rel=1e-12)


def test_codiemb_weights_are_a_config() -> None:
    pred, gold = _scores(2)
    obj = get("codiemb", pro_weight=0.0, pearson_weight=1.0, rankkl_weight=0.0, cosent_weight=0.08)
    expected = lists.pearson_loss(pred, gold) + 0.08 * oracle_cosent(pred.tolist(), gold.tolist())
    assert obj(pred, gold).item() == pytest.approx(expected.item(), rel=1e-12)
    assert obj.terms(pred, gold).pro is None


def test_codiemb_degenerate_and_gradients() -> None:
    pred = torch.randn(5, dtype=torch.float64, requires_grad=True)
    loss = get("codiemb")(pred, torch.ones(5, dtype=torch.float64))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(pred.grad, torch.zeros(5, dtype=torch.float64))
    pred2, gold = _scores(3)
    pred2.requires_grad_()
    get("codiemb")(pred2, gold).backward()
    assert torch.isfinite(pred2.grad).all() and pred2.grad.abs().sum() > 0


def test_sts_objectives_are_not_matrix_losses() -> None:
    with pytest.raises(TypeError, match="directly"):
        ContrastiveLoss("codiemb")
    with pytest.raises(ValueError, match=r"\(n,\)"):
        get("codiemb")(torch.zeros(3, 3), torch.zeros(3, 3))


# ----------------------------------------------------------------------------- IR


def oracle_ir(q, pos, pmask, neg, nmask, tau):
    """Loop oracle on nested lists: q[i][:], pos[i][t][:], pmask[i][t], neg[i][k][:], nmask[i][k]."""
    n, P, K = len(q), len(pmask[0]), len(neg[0])

    def dot(a, b):
        return sum(x * y for x, y in zip(a, b))

    slot_losses = []
    for t in range(P):
        cands = [pos[j][t] for j in range(n) if pmask[j][t]]
        cands += [neg[j][k] for j in range(n) for k in range(K) if nmask[j][k]]
        rows = []
        for i in range(n):
            if not pmask[i][t]:
                continue
            logits = [dot(q[i], c) / tau for c in cands]
            lse = math.log(sum(math.exp(v) for v in logits))
            rows.append(lse - dot(q[i], pos[i][t]) / tau)
        if rows:
            slot_losses.append(sum(rows) / len(rows))
    return sum(slot_losses) / len(slot_losses) if slot_losses else 0.0


def _ir_data(seed, n=4, P=3, K=2, d=5):
    g = torch.Generator().manual_seed(seed)

    def unit(*shape):
        return F.normalize(torch.randn(*shape, d, generator=g, dtype=torch.float64), dim=-1)

    pmask = torch.ones(n, P, dtype=torch.bool)
    pmask[1, P - 1] = False  # query 1 misses its last slot
    pmask[n - 1, 1:] = False  # the last query has one positive
    nmask = torch.ones(n, K, dtype=torch.bool)
    nmask[2, K - 1] = False  # a padded hard negative
    return unit(n), unit(n, P), pmask, unit(n, K), nmask


def _as_lists(*tensors):
    return [t.tolist() for t in tensors]


@pytest.mark.parametrize("seed", [0, 1])
def test_codiemb_ir_matches_oracle_with_missing_slots(seed) -> None:
    q, pos, pmask, neg, nmask = _ir_data(seed)
    tau = 0.1
    loss = get("codiemb_ir", temperature=tau)(q, pos, pmask, neg, nmask)
    assert loss.item() == pytest.approx(oracle_ir(*_as_lists(q, pos, pmask, neg, nmask), tau), rel=1e-10)


def test_codiemb_ir_gradients_match_finite_differences() -> None:
    q, pos, pmask, neg, nmask = _ir_data(4, n=3, P=2, K=2, d=3)
    tau = 0.2
    inputs = [q.clone().requires_grad_(), pos.clone().requires_grad_(), neg.clone().requires_grad_()]
    get("codiemb_ir", temperature=tau)(inputs[0], inputs[1], pmask, inputs[2], nmask).backward()
    h = 1e-6
    for which, x in enumerate(inputs):
        flat = x.detach().reshape(-1)
        for e in range(flat.numel()):
            vals = []
            for sign in (1, -1):
                bumped = [y.detach().clone() for y in inputs]
                bumped[which].view(-1)[e] += sign * h
                vals.append(oracle_ir(*_as_lists(bumped[0], bumped[1], pmask, bumped[2], nmask), tau))
            assert x.grad.reshape(-1)[e].item() == pytest.approx((vals[0] - vals[1]) / (2 * h), abs=1e-6)


def test_codiemb_ir_full_groups_equal_released_layout() -> None:
    # no missing positives: slot t is cross_entropy over [q_i . (pos_jt, negs_j)] with target i, averaged over slots
    q, pos, _, neg, _ = _ir_data(7)
    n, P, K = pos.shape[0], pos.shape[1], neg.shape[1]
    pmask = torch.ones(n, P, dtype=torch.bool)
    expected = 0.0
    for t in range(P):
        groups = torch.cat([pos[:, t : t + 1], neg], dim=1).reshape(n * (1 + K), -1)
        expected += F.cross_entropy(q @ groups.T / 0.05, torch.arange(n) * (1 + K)).item() / P
    assert get("codiemb_ir", temperature=0.05)(q, pos, pmask, neg).item() == pytest.approx(expected, rel=1e-10)


def test_codiemb_ir_no_positive_at_all_is_zero() -> None:
    q, pos, _, neg, _ = _ir_data(0)
    q.requires_grad_()
    loss = get("codiemb_ir")(q, pos, torch.zeros(4, 3, dtype=torch.bool), neg)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(q.grad, torch.zeros_like(q))


def test_codiemb_ir_missing_positives_get_no_gradient() -> None:
    # a missing positive is neither a target nor a candidate of any row, in any slot
    q, pos, pmask, neg, nmask = _ir_data(1)
    pos = pos.clone().requires_grad_()
    get("codiemb_ir", temperature=0.1)(q, pos, pmask, neg, nmask).backward()
    assert torch.equal(pos.grad[1, 2], torch.zeros_like(pos.grad[1, 2]))  # a missing positive: no gradient
    assert torch.equal(pos.grad[3, 1:], torch.zeros_like(pos.grad[3, 1:]))
    assert pos.grad[0, 1].abs().sum() > 0
