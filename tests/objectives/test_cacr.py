"""CACR against a float64 loop oracle, and its spec properties."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from oracles import autograd_grad as _grad
from oracles import fd_grad as _fd_grad

from contrastkit import ContrastiveLoss
from contrastkit.objectives import Status, cacr, get

# ----------------------------------------------------------------------------- helpers


def _views(k: int, n: int, d: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(k, n, d, generator=g, dtype=torch.float64), dim=-1)


# ----------------------------------------------------------------------------- oracle


def _cost(a: list[float], b: list[float]) -> float:
    """Squared Euclidean distance ``2 - 2 a.b`` (unit vectors)."""
    return 2.0 - 2.0 * sum(x * y for x, y in zip(a, b))


def _softmax(values: list[float]) -> list[float]:
    m = max(values)
    e = [math.exp(v - m) for v in values]
    total = sum(e)
    return [x / total for x in e]


def oracle_cacr(
    views: torch.Tensor,
    *,
    t_plus: float = 1.0,
    t_minus: float = 1.0,
    alpha: float = 1.0,
    beta: float = 1.0,
    weight_views: torch.Tensor | None = None,
) -> tuple[float, float]:
    """(CA, CR) by loops; softmax weights from ``weight_views`` (default: ``views``) to emulate detaching."""
    Z = views.tolist()
    Zw = Z if weight_views is None else weight_views.tolist()
    K, n = len(Z), len(Z[0])
    ca_terms = []
    for x in range(K):
        for i in range(n):
            others = [y for y in range(K) if y != x]
            if not others:
                continue
            w = _softmax([t_plus * _cost(Zw[x][i], Zw[y][i]) for y in others])
            ca_terms.append(sum(wy * alpha * _cost(Z[x][i], Z[y][i]) for wy, y in zip(w, others)))
    cr_terms = []
    for x in range(K):
        for y in range(x + 1, K):
            for i in range(n):
                negs = [j for j in range(n) if j != i]
                if not negs:
                    continue
                w = _softmax([-t_minus * _cost(Zw[x][i], Zw[y][j]) for j in negs])
                cr_terms.append(sum(wj * (-beta) * _cost(Z[x][i], Z[y][j]) for wj, j in zip(w, negs)))
    ca = sum(ca_terms) / len(ca_terms) if ca_terms else 0.0
    cr = sum(cr_terms) / len(cr_terms) if cr_terms else 0.0
    return ca, cr


# ----------------------------------------------------------------------------- tests

PARAMS = [
    dict(),
    dict(t_plus=2.0, t_minus=0.5, alpha=0.7, beta=1.3),
    dict(t_plus=0.0, t_minus=3.0),
]


@pytest.mark.parametrize("params", PARAMS)
@pytest.mark.parametrize(("K", "n", "seed"), [(2, 4, 0), (3, 5, 1), (5, 6, 2)])
def test_cacr_matches_oracle(params, K, n, seed):
    views = _views(K, n, d=4, seed=seed)
    obj = get("cacr", **params)
    ca, cr = obj.terms(views)
    want_ca, want_cr = oracle_cacr(views, **params)
    assert ca.item() == pytest.approx(want_ca, abs=1e-12)
    assert cr.item() == pytest.approx(want_cr, abs=1e-12)
    assert obj(views).item() == pytest.approx(want_ca + want_cr, abs=1e-12)


def test_cacr_gradient_flows_through_weights_by_default():
    views, params = _views(3, 4, d=3, seed=3), dict(t_plus=1.5, t_minus=2.0)
    g = _grad(get("cacr", **params), views)
    ref = _fd_grad(lambda z: sum(oracle_cacr(z, **params)), views)
    torch.testing.assert_close(g, ref, atol=1e-6, rtol=1e-6)


def test_cacr_detach_treats_weights_as_constants():
    views, params = _views(3, 4, d=3, seed=3), dict(t_plus=1.5, t_minus=2.0)
    g = _grad(get("cacr", detach=True, **params), views)
    ref = _fd_grad(lambda z: sum(oracle_cacr(z, weight_views=views, **params)), views)
    torch.testing.assert_close(g, ref, atol=1e-6, rtol=1e-6)
    assert (g - _grad(get("cacr", **params), views)).abs().max() > 1e-4


def test_zero_t_plus_gives_uniform_attraction():
    views = _views(4, 5, d=4, seed=4)
    ca = cacr.cacr_terms(views, t_plus=0.0, alpha=2.0).attraction
    K, n = views.shape[:2]
    sq = [
        ((views[x, i] - views[y, i]) ** 2).sum().item() for x in range(K) for y in range(K) if y != x for i in range(n)
    ]
    assert ca.item() == pytest.approx(2.0 * sum(sq) / len(sq), abs=1e-12)


def test_attraction_grows_with_t_plus():
    views = _views(4, 5, d=4, seed=5)
    values = [cacr.cacr_terms(views, t_plus=t).attraction.item() for t in (0.0, 0.5, 1.0, 4.0)]
    assert all(b > a for a, b in itertools.pairwise(values))


@pytest.mark.parametrize("seed", range(5))
def test_attraction_nonnegative_repulsion_nonpositive(seed):
    views = _views(3, 6, d=3, seed=seed)
    ca, cr = cacr.cacr_terms(views)
    assert ca.item() >= 0.0
    assert cr.item() <= 0.0


def test_repulsion_is_one_direction_cross_view():
    # CR uses z_x as queries and z_y (x < y) as negatives: it is not symmetric in the two views
    views = _views(2, 5, d=3, seed=6)
    cr = cacr.cacr_terms(views, t_minus=3.0).repulsion.item()
    cr_flipped = cacr.cacr_terms(views.flip(0), t_minus=3.0).repulsion.item()
    assert cr == pytest.approx(oracle_cacr(views, t_minus=3.0)[1], abs=1e-12)
    assert abs(cr - cr_flipped) > 1e-6


def test_degenerate_batches():
    one_view = _views(1, 4, seed=7).requires_grad_(True)
    loss = get("cacr")(one_view)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.isfinite(one_view.grad).all()
    one_item = _views(3, 1, seed=8).requires_grad_(True)
    ca, cr = cacr.cacr_terms(one_item)
    assert cr.item() == 0.0
    assert ca.item() == pytest.approx(oracle_cacr(one_item.detach())[0], abs=1e-12)
    (ca + cr).backward()
    assert torch.isfinite(one_item.grad).all()


def test_info_and_no_tiling():
    obj = get("cacr")
    info = type(obj).info
    assert info.name == "cacr" and info.status is Status.CODE
    assert (obj.t_plus, obj.t_minus, obj.alpha, obj.beta, obj.detach) == (1.0, 1.0, 1.0, 1.0, False)
    with pytest.raises(TypeError, match="cacr"):
        ContrastiveLoss("cacr")
    with pytest.raises(ValueError, match=r"\(K, n, d\)"):
        obj(torch.randn(3, 4))
