"""List reducers (Pearson, RankKL, PRO, CoSENT) against float64 loop oracles."""

import math

import pytest
import torch

from contrastkit.objectives.lists import average_rank_desc, cosent_loss, pearson_loss, pro_loss, rankkl_loss

# ----------------------------------------------------------------------------- loop oracles


def oracle_pearson(s, y):
    n = len(s)
    ms, my = sum(s) / n, sum(y) / n
    cov = sum((a - ms) * (b - my) for a, b in zip(s, y)) / n
    vs = sum((a - ms) ** 2 for a in s) / n
    vy = sum((b - my) ** 2 for b in y) / n
    return 1 - cov / (math.sqrt(vs) * math.sqrt(vy))


def oracle_ranks(y):
    ranks = []
    for k in range(len(y)):
        # positions (0-based, descending) the tie group of y[k] occupies, averaged
        above = sum(1 for v in y if v > y[k])
        group = [above + t for t in range(sum(1 for v in y if v == y[k]))]
        ranks.append(sum(group) / len(group))
    return ranks


def oracle_rankkl(s, y, tau=0.05):
    n = len(s)
    ideal = [(n - 1 - r) / (n - 1) / tau for r in oracle_ranks(y)]
    zq = sum(math.exp(v) for v in ideal)
    q = [math.exp(v) / zq for v in ideal]
    zp = math.log(sum(math.exp(v / tau) for v in s))
    logp = [v / tau - zp for v in s]
    return sum(qi * (math.log(qi) - lp) for qi, lp in zip(q, logp)) / n


def oracle_pro(s, y, tau=0.05, eps=1e-8):
    order = sorted(range(len(y)), key=lambda i: -y[i])
    terms = []
    for pos, k in enumerate(order):
        negs = [j for j in order[pos + 1 :] if y[k] - y[j] > eps]
        if not negs:
            continue
        w = {j: y[k] - y[j] for j in negs}
        wk = max(w.values())
        logits = [wk * s[k] / tau] + [w[j] * s[j] / tau for j in negs]
        top = max(logits)
        lse = top + math.log(sum(math.exp(v - top) for v in logits))
        terms.append(lse - logits[0])
    return sum(terms) / len(terms) if terms else 0.0


def oracle_cosent(s, y, tau=0.05):
    terms = [0.0]
    for a in range(len(s)):
        for b in range(len(s)):
            if y[a] > y[b]:
                terms.append((s[b] - s[a]) / tau)
    top = max(terms)
    return top + math.log(sum(math.exp(v - top) for v in terms))


ORACLES = [
    (pearson_loss, oracle_pearson),
    (rankkl_loss, oracle_rankkl),
    (pro_loss, oracle_pro),
    (cosent_loss, oracle_cosent),
]


def fd_grad(oracle, s, y, h=1e-6):
    grad = []
    for i in range(len(s)):
        up, down = list(s), list(s)
        up[i] += h
        down[i] -= h
        grad.append((oracle(up, y) - oracle(down, y)) / (2 * h))
    return grad


def _data(seed, n=7, ties=True):
    g = torch.Generator().manual_seed(seed)
    s = torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1
    y = torch.randint(0, 4 if ties else 1000, (n,), generator=g).to(torch.float64)
    return s, y


# ----------------------------------------------------------------------------- tests


def test_average_rank_desc_ties() -> None:
    y = torch.tensor([3.0, 1.0, 3.0, 2.0, 3.0])
    assert average_rank_desc(y).tolist() == [1.0, 4.0, 1.0, 3.0, 1.0]
    assert average_rank_desc(torch.tensor([2.0, 1.0, 2.0])).tolist() == [0.5, 2.0, 0.5]


@pytest.mark.parametrize(("fn", "oracle"), ORACLES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_forward_matches_oracle(fn, oracle, seed) -> None:
    s, y = _data(seed)
    assert y.unique().numel() < y.numel(), "the data must contain gold ties"
    expected = oracle(s.tolist(), y.tolist())
    assert fn(s, y).item() == pytest.approx(expected, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize(("fn", "oracle"), ORACLES)
def test_gradient_matches_oracle_finite_differences(fn, oracle) -> None:
    s, y = _data(5, n=6)
    s = (s * 0.1).requires_grad_()  # keep exp((.)/tau) moderate for finite differences
    fn(s, y).backward()
    expected = fd_grad(oracle, s.detach().tolist(), y.tolist())
    assert s.grad.tolist() == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_pro_weights_use_gold_gaps() -> None:
    # y = [3, 1, 0]: position 0 has negatives {1: w=2, 2: w=3}, w_k = 3; position 1 has {2: w=1}, w_k = 1
    s = torch.tensor([0.2, 0.5, -0.1], dtype=torch.float64)
    y = torch.tensor([3.0, 1.0, 0.0], dtype=torch.float64)
    tau = 0.5
    t0 = -math.log(
        math.exp(3 * 0.2 / tau) / (math.exp(3 * 0.2 / tau) + math.exp(2 * 0.5 / tau) + math.exp(-3 * 0.1 / tau))
    )
    t1 = -math.log(math.exp(0.5 / tau) / (math.exp(0.5 / tau) + math.exp(-0.1 / tau)))
    assert pro_loss(s, y, tau=tau).item() == pytest.approx((t0 + t1) / 2, rel=1e-12)


def test_pro_eps_excludes_near_ties() -> None:
    s = torch.tensor([0.3, 0.1], dtype=torch.float64)
    y = torch.tensor([1.0, 1.0 - 1e-9], dtype=torch.float64)
    assert pro_loss(s, y).item() == 0.0
    assert pro_loss(s, y, eps=0.0).item() > 0.0


def test_cosent_counts_only_strictly_ordered_pairs() -> None:
    s = torch.tensor([0.1, 0.4, 0.2], dtype=torch.float64)
    y = torch.tensor([2.0, 2.0, 1.0], dtype=torch.float64)
    # pairs (a, b) with y_a > y_b: (0, 2) and (1, 2)
    expected = math.log(1 + math.exp((0.2 - 0.1) / 0.05) + math.exp((0.2 - 0.4) / 0.05))
    assert cosent_loss(s, y).item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("fn", [f for f, _ in ORACLES])
@pytest.mark.parametrize("case", ["single", "constant_gold"])
def test_degenerate_lists_give_zero_with_graph(fn, case) -> None:
    n = 1 if case == "single" else 5
    s = torch.randn(n, dtype=torch.float64, requires_grad=True)
    y = torch.full((n,), 2.0, dtype=torch.float64)
    loss = fn(s, y)
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(s.grad, torch.zeros_like(s))


def test_pearson_constant_prediction_is_finite() -> None:
    s = torch.full((4,), 0.3, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    loss = pearson_loss(s, y)
    loss.backward()
    assert loss.item() == pytest.approx(1.0, abs=1e-9)
    assert torch.isfinite(s.grad).all()


def test_pearson_invariances() -> None:
    s, y = _data(3, ties=False)
    assert pearson_loss(3 * s + 1, y).item() == pytest.approx(pearson_loss(s, y).item(), rel=1e-9)
    assert pearson_loss(2 * y - 5, y).item() == pytest.approx(0.0, abs=1e-12)
    assert pearson_loss(-y, y).item() == pytest.approx(2.0, abs=1e-12)


def test_rankkl_is_zero_at_the_ideal_scores() -> None:
    y = torch.tensor([4.0, 1.0, 3.0, 0.5], dtype=torch.float64)
    ideal = (3 - average_rank_desc(y)) / 3
    assert rankkl_loss(ideal, y).item() == pytest.approx(0.0, abs=1e-12)
    assert rankkl_loss(-ideal, y).item() > 0.1


def test_shapes_are_checked() -> None:
    with pytest.raises(ValueError, match="same shape"):
        pearson_loss(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValueError, match="same shape"):
        cosent_loss(torch.zeros(2, 2), torch.zeros(2, 2))
