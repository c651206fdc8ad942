"""GroCo against a float64 loop oracle; the relaxed sorting network and the group ordering property."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from oracles import autograd_grad as _grad
from oracles import fd_grad as _fd_grad

from contrastkit import ContrastiveLoss
from contrastkit.objectives import Status, get, groco

# ----------------------------------------------------------------------------- helpers


def _views(v: int, n: int, d: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(v, n, d, generator=g, dtype=torch.float64), dim=-1)


def _dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b))


# ----------------------------------------------------------------------------- oracle


def oracle_network(x: list[float], steepness: float) -> tuple[list[float], list[list[float]]]:
    """Relaxed odd-even transposition network on one list: (values, P[j][r])."""
    w = len(x)
    x = list(x)
    P = [[1.0 if j == r else 0.0 for r in range(w)] for j in range(w)]
    for layer in range(w):
        for a in range(layer % 2, w - 1, 2):
            b = a + 1
            alpha = 0.5 + math.atan(steepness * (x[b] - x[a])) / math.pi
            x[a], x[b] = alpha * x[a] + (1 - alpha) * x[b], (1 - alpha) * x[a] + alpha * x[b]
            for j in range(w):
                pa, pb = P[j][a], P[j][b]
                P[j][a], P[j][b] = alpha * pa + (1 - alpha) * pb, (1 - alpha) * pa + alpha * pb
    return x, P


def _bce(p: float, t: float) -> float:
    """PyTorch's BCE: logs clamped at -100."""
    log_p = max(math.log(p), -100.0) if p > 0 else -100.0
    log_q = max(math.log(1 - p), -100.0) if p < 1 else -100.0
    return -(t * log_p + (1 - t) * log_q)


def oracle_row_loss(x: list[float], k: int, steepness: float) -> float:
    _, P = oracle_network(x, steepness)
    w = len(x)
    total = 0.0
    for j in range(w):
        p_plus = min(max(sum(P[j][k:]), 0.0), 1.0)
        p_minus = min(max(sum(P[j][:k]), 0.0), 1.0)
        t = 1.0 if j >= k else 0.0
        total += 0.5 * (_bce(p_plus, t) + _bce(p_minus, 1.0 - t)) / w
    return total


def oracle_groco(
    anchors: torch.Tensor, candidates: torch.Tensor, *, topk_neg: int = 10, steepness: float = 1.0
) -> float:
    """Mean over anchors; ``anchors`` supply the anchor role, ``candidates`` the positives and negatives."""
    A, C = anchors.tolist(), candidates.tolist()
    V, n = len(A), len(A[0])
    k = min(topk_neg, n - 1)
    rows = []
    for a in range(V):
        for i in range(n):
            negs = sorted((_dot(A[a][i], C[a][j]) for j in range(n) if j != i), reverse=True)[:k]
            pos = [_dot(A[a][i], C[b][i]) for b in range(V) if b != a]
            rows.append(oracle_row_loss(sorted(negs) + sorted(pos), k, steepness))
    return sum(rows) / len(rows)


# ----------------------------------------------------------------------------- relaxed sorting


@pytest.mark.parametrize(("width", "steepness"), [(2, 1.0), (5, 1.0), (8, 3.0), (11, 0.5)])
def test_relaxed_sort_matches_oracle_and_is_doubly_stochastic(width, steepness):
    x = torch.randn(4, width, dtype=torch.float64, generator=torch.Generator().manual_seed(width))
    values, P = groco.relaxed_sort(x, steepness=steepness)
    for row in range(4):
        want_values, want_P = oracle_network(x[row].tolist(), steepness)
        torch.testing.assert_close(values[row], torch.tensor(want_values, dtype=torch.float64))
        torch.testing.assert_close(P[row], torch.tensor(want_P, dtype=torch.float64))
    ones = torch.ones(4, width, dtype=torch.float64)
    torch.testing.assert_close(P.sum(-1), ones)
    torch.testing.assert_close(P.sum(-2), ones)
    assert (P >= 0).all()
    # P carries the values: sorted = x @ P
    torch.testing.assert_close(torch.einsum("bj,bjr->br", x, P), values)


def test_relaxed_sort_hard_limit_is_a_sorting_permutation():
    x = torch.tensor([[0.3, -1.0, 2.0, 0.7, -0.2, 1.1]], dtype=torch.float64)
    values, P = groco.relaxed_sort(x, steepness=1e9)
    sorted_x, order = x.sort(-1)
    torch.testing.assert_close(values, sorted_x, atol=1e-6, rtol=0)
    ranks = order.argsort(-1)[0]
    torch.testing.assert_close(P[0], F.one_hot(ranks, 6).to(torch.float64), atol=1e-6, rtol=0)


def test_only_group_order_matters():
    loss = lambda values: groco.group_sort_loss(torch.tensor([values], dtype=torch.float64), 2, steepness=1e9)  # noqa: E731
    # two negatives then two positives; every positive above every negative: ~0 whatever the within-group order
    assert loss([0.1, 0.2, 0.8, 0.9]).item() < 1e-6
    assert loss([0.2, 0.1, 0.9, 0.8]).item() < 1e-6
    # one positive below one negative: the same penalty whatever the order inside each group
    violated = loss([0.1, 0.5, 0.3, 0.9]).item()
    assert violated > 1.0
    assert loss([0.5, 0.1, 0.9, 0.3]).item() == pytest.approx(violated, rel=1e-6)


def test_group_sort_loss_matches_oracle_and_clamps():
    x = torch.randn(3, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    got = groco.group_sort_loss(x, 3, steepness=2.0)
    for row in range(3):
        assert got[row].item() == pytest.approx(oracle_row_loss(x[row].tolist(), 3, 2.0), abs=1e-12)
    # a hard violation saturates the clamped BCE: finite, at most 100
    hard = groco.group_sort_loss(torch.tensor([[0.9, 0.1]], dtype=torch.float64), 1, steepness=1e300)
    assert torch.isfinite(hard).all() and 0 < hard.item() <= 100.0


# ----------------------------------------------------------------------------- GroCo


@pytest.mark.parametrize(
    ("V", "n", "topk_neg", "steepness", "seed"),
    [(2, 4, 10, 1.0, 0), (3, 6, 2, 1.0, 1), (2, 13, 10, 5.0, 2), (4, 5, 3, 0.5, 3)],
)
def test_groco_matches_oracle(V, n, topk_neg, steepness, seed):
    views = _views(V, n, d=4, seed=seed)
    loss = get("groco", topk_neg=topk_neg, steepness=steepness)(views)
    assert loss.item() == pytest.approx(oracle_groco(views, views, topk_neg=topk_neg, steepness=steepness), abs=1e-12)


def test_groco_scores_are_pre_ordered():
    views = _views(3, 6, d=4, seed=4)
    x, k = groco.groco_scores(views, topk_neg=3)
    assert k == 3 and x.shape == (18, 5)
    assert (x[:, :k].diff(dim=-1) >= 0).all() and (x[:, k:].diff(dim=-1) >= 0).all()
    a, i = 1, 2  # row a * n + i
    negs = sorted((views[a, i] @ views[a, j]).item() for j in range(6) if j != i)[-3:]
    pos = sorted((views[a, i] @ views[b, i]).item() for b in range(3) if b != a)
    torch.testing.assert_close(x[a * 6 + i], torch.tensor(negs + pos, dtype=torch.float64))


def test_groco_stop_grad_reaches_anchors_only():
    views, params = _views(2, 4, d=3, seed=5), dict(topk_neg=2, steepness=2.0)
    g = _grad(get("groco", **params), views)
    ref = _fd_grad(lambda z: oracle_groco(z, views, **params), views)
    torch.testing.assert_close(g, ref, atol=1e-6, rtol=1e-6)


def test_groco_without_stop_grad():
    views, params = _views(2, 4, d=3, seed=5), dict(topk_neg=2, steepness=2.0)
    g = _grad(get("groco", stop_grad=False, **params), views)
    ref = _fd_grad(lambda z: oracle_groco(z, z, **params), views)
    torch.testing.assert_close(g, ref, atol=1e-6, rtol=1e-6)
    assert (g - _grad(get("groco", **params), views)).abs().max() > 1e-4


def test_groco_better_ordered_batch_has_lower_loss():
    views = _views(2, 8, d=6, seed=6)
    aligned = torch.stack([views[0], F.normalize(views[0] + 0.05 * views[1], dim=-1)])
    obj = get("groco", steepness=5.0)
    assert obj(aligned).item() < obj(views).item()


@pytest.mark.parametrize(("V", "n"), [(1, 4), (3, 1)])
def test_groco_degenerate_batches(V, n):
    views = _views(V, n, seed=7).requires_grad_(True)
    loss = get("groco")(views)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.isfinite(views.grad).all()


def test_info_and_defaults():
    obj = get("groco")
    info = type(obj).info
    assert info.name == "groco" and info.status is Status.CODE and info.reducer == "R7"
    assert (obj.topk_neg, obj.steepness, obj.stop_grad) == (10, 1.0, True)
    with pytest.raises(TypeError, match="groco"):
        ContrastiveLoss("groco")
    with pytest.raises(ValueError, match="topk_neg"):
        get("groco", topk_neg=0)
