"""Hardness (Wang & Liu) and alignment / uniformity (Wang & Isola) against loop oracles and the spec's properties."""

import math

import pytest
import torch
import torch.nn.functional as F

from contrastkit import ContrastiveLoss
from contrastkit.objectives import Status, Targets, get, hardness  # noqa: F401 - hardness registers objectives
from contrastkit.objectives.hardness import alignment, relative_penalty, tolerance, uniformity


def _infonce_row(s_pos, s_neg, tau):
    """-log(e^{s_ii/tau} / (e^{s_ii/tau} + sum_k e^{s_ik/tau})) as a torch expression (for autograd)."""
    logits = torch.cat([s_pos.reshape(1), s_neg]) / tau
    return torch.logsumexp(logits, 0) - logits[0]


# ----------------------------------------------------------------------------- relative penalty


@pytest.mark.parametrize("tau", [0.05, 0.2, 1.0, 5.0])
def test_relative_penalty_equals_gradient_ratio(tau) -> None:
    g = torch.Generator().manual_seed(0)
    s_pos = torch.rand((), generator=g, dtype=torch.float64).requires_grad_()
    s_neg = (torch.rand(6, generator=g, dtype=torch.float64) * 2 - 1).requires_grad_()
    _infonce_row(s_pos, s_neg, tau).backward()
    ratio = s_neg.grad.abs() / s_pos.grad.abs()
    assert torch.allclose(relative_penalty(s_neg.detach(), tau), ratio, rtol=1e-10, atol=0)


def test_relative_penalty_oracle_and_limits() -> None:
    s_neg = [0.3, -0.2, 0.9, 0.1]
    tau = 0.3
    z = sum(math.exp(v / tau) for v in s_neg)
    expected = [math.exp(v / tau) / z for v in s_neg]
    assert relative_penalty(torch.tensor(s_neg, dtype=torch.float64), tau).tolist() == pytest.approx(expected)
    cold = relative_penalty(torch.tensor(s_neg, dtype=torch.float64), 1e-3)
    assert cold[2].item() == pytest.approx(1.0) and cold.argmax().item() == 2  # the hardest negative
    hot = relative_penalty(torch.tensor(s_neg, dtype=torch.float64), 1e4)
    assert torch.allclose(hot, torch.full((4,), 0.25, dtype=torch.float64), atol=1e-4)  # uniform


@pytest.mark.parametrize("s_pos", [0.5, 0.95])  # hardest negative above / below the positive
def test_small_tau_limit_is_hardest_negative_hinge(s_pos) -> None:
    s_neg = torch.tensor([0.1, 0.7, -0.3, 0.6], dtype=torch.float64)
    hinge = max(0.0, max(s_neg.tolist()) - s_pos)
    errors = []
    for tau in (1e-1, 1e-2, 1e-3):
        scaled = tau * _infonce_row(torch.tensor(s_pos, dtype=torch.float64), s_neg, tau).item()
        errors.append(abs(scaled - hinge))
        assert -1e-12 <= scaled - hinge <= tau * math.log(len(s_neg) + 1) + 1e-12
    assert errors[2] < errors[1] < errors[0] and errors[2] < 2e-3


# ----------------------------------------------------------------------------- hard InfoNCE


def oracle_hard_infonce(S, pos_col, k, tau):
    rows = []
    for i, row in enumerate(S):
        negs = sorted((c for c in range(len(row)) if c != pos_col[i]), key=lambda c: -row[c])[:k]
        logits = [row[pos_col[i]] / tau] + [row[c] / tau for c in negs]
        rows.append(math.log(sum(math.exp(v) for v in logits)) - logits[0])
    return sum(rows) / len(rows)


@pytest.mark.parametrize("k", [1, 2, 4])
def test_hard_infonce_matches_oracle(k) -> None:
    g = torch.Generator().manual_seed(k)
    S = torch.rand(5, 7, generator=g, dtype=torch.float64) * 2 - 1
    pos = torch.tensor([0, 3, 2, 6, 1])
    loss = get("hard_infonce", temperature=0.2, k=k)(S, Targets.from_index(pos, num_cols=7))
    assert loss.item() == pytest.approx(oracle_hard_infonce(S.tolist(), pos.tolist(), k, 0.2), rel=1e-10)


def test_hard_infonce_gradient_only_on_kept_negatives() -> None:
    S = torch.tensor([[0.9, 0.1, 0.5, -0.2, 0.4]], dtype=torch.float64, requires_grad=True)
    get("hard_infonce", temperature=0.5, k=2)(S, Targets.diagonal(1, num_cols=5)).backward()
    assert S.grad[0, 2] > 0 and S.grad[0, 4] > 0  # the two hardest negatives
    assert S.grad[0, 1] == 0 and S.grad[0, 3] == 0
    assert S.grad[0, 0] < 0


@pytest.mark.parametrize("k", [4, 10])
def test_hard_infonce_with_all_negatives_equals_infonce(k) -> None:
    S = torch.randn(4, 5, dtype=torch.float64)
    valid = torch.ones(4, 5, dtype=torch.bool)
    valid[1, 4] = False  # a padded column: row 1 has only 3 negatives
    t = Targets(pos=torch.eye(4, 5, dtype=torch.float64), valid=valid)
    hard = get("hard_infonce", temperature=0.1, k=k)(S, t)
    assert hard.item() == pytest.approx(get("infonce", temperature=0.1)(S, t).item(), rel=1e-12)


def test_hard_infonce_is_not_streamable() -> None:
    assert not get("hard_infonce").row_separable
    with pytest.raises(ValueError, match="not row-separable"):
        ContrastiveLoss("hard_infonce", tile_size=2)
    q, c = torch.randn(4, 3, dtype=torch.float64), torch.randn(6, 3, dtype=torch.float64)
    dense = ContrastiveLoss("hard_infonce", k=2, similarity="dot")(q, c, Targets.diagonal(4, num_cols=6))
    assert dense.item() == pytest.approx(oracle_hard_infonce((q @ c.T).tolist(), [0, 1, 2, 3], 2, 1.0), rel=1e-10)
    with pytest.raises(ValueError, match="k must be"):
        get("hard_infonce", k=0)


# ----------------------------------------------------------------------------- alignment, uniformity, tolerance


def _unit(n, d, seed):
    return F.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64), dim=-1)


def oracle_align(x, y, alpha):
    return sum(math.sqrt(sum((a - b) ** 2 for a, b in zip(u, v))) ** alpha for u, v in zip(x, y)) / len(x)


def oracle_uniform(x, t):
    vals = []
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            vals.append(math.exp(-t * sum((a - b) ** 2 for a, b in zip(x[i], x[j]))))
    return math.log(sum(vals) / len(vals))


@pytest.mark.parametrize("alpha", [2.0, 1.0, 3.0])
def test_alignment_matches_oracle(alpha) -> None:
    x, y = _unit(6, 4, 0), _unit(6, 4, 1)
    assert alignment(x, y, alpha=alpha).item() == pytest.approx(oracle_align(x.tolist(), y.tolist(), alpha), rel=1e-10)


@pytest.mark.parametrize("alpha", [2.0, 1.0])
def test_alignment_zero_for_identical_pairs(alpha) -> None:
    x = _unit(5, 3, 2).requires_grad_()
    loss = alignment(x, x.detach().clone(), alpha=alpha)
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("t", [2.0, 0.5])
def test_uniformity_matches_oracle_and_is_nonpositive(t) -> None:
    x = _unit(7, 3, 3)
    value = uniformity(x, t=t)
    assert value.item() == pytest.approx(oracle_uniform(x.tolist(), t), rel=1e-10)
    assert value.item() < 0
    collapsed = _unit(1, 3, 4).expand(5, 3)
    assert uniformity(collapsed).item() == pytest.approx(0.0, abs=1e-15)  # the maximum: all points equal
    assert uniformity(_unit(1, 3, 5)).item() == 0.0


def test_align_uniform_objective() -> None:
    x, y = _unit(6, 4, 6), _unit(6, 4, 7)
    views = torch.stack([x, y])
    expected = (
        oracle_align(x.tolist(), y.tolist(), 2) + (oracle_uniform(x.tolist(), 2) + oracle_uniform(y.tolist(), 2)) / 2
    )
    assert get("align_uniform")(views).item() == pytest.approx(expected, rel=1e-10)
    weighted = (
        oracle_align(x.tolist(), y.tolist(), 1)
        + 0.5 * (oracle_uniform(x.tolist(), 3) + oracle_uniform(y.tolist(), 3)) / 2
    )
    obj = get("align_uniform", alpha=1.0, t=3.0, uniform_weight=0.5)
    assert obj(views).item() == pytest.approx(weighted, rel=1e-10)
    assert obj.info.status is Status.PAPER
    with pytest.raises(ValueError, match=r"\(2, n, d\)"):
        obj(torch.stack([x, y, x]))


def test_tolerance_matches_oracle() -> None:
    z = _unit(6, 3, 8)
    labels = torch.tensor([0, 1, 0, 2, 1, 0])
    pairs = [(i, j) for i in range(6) for j in range(i + 1, 6) if labels[i] == labels[j]]
    zl = z.tolist()
    expected = sum(sum(a * b for a, b in zip(zl[i], zl[j])) for i, j in pairs) / len(pairs)
    assert tolerance(z, labels).item() == pytest.approx(expected, rel=1e-10)
    with pytest.raises(ValueError, match="no same-class pair"):
        tolerance(z, torch.arange(6))
