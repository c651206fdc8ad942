"""MV-InfoNCE and MV-DHEL against float64 loop oracles, and their two-view identities."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from oracles import autograd_grad as _grad
from oracles import fd_grad as _fd_grad

from contrastkit import ContrastiveLoss
from contrastkit.objectives import Status, decoupled, get, infonce, multiview  # noqa: F401 - registers

# ----------------------------------------------------------------------------- helpers


def _views(v: int, n: int, d: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(v, n, d, generator=g, dtype=torch.float64), dim=-1)


def _get(name: str, **hparams):
    return get(name, **hparams).double()


def _tau(obj) -> float:
    """The temperature the objective actually uses (its log-scale is stored in float32)."""
    return 1.0 / float(obj.temperature.scale())


def _dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b))


def _mean(rows: list[float]) -> float:
    return sum(rows) / len(rows) if rows else 0.0


# ----------------------------------------------------------------------------- oracles


def oracle_mv_infonce_rows(views: torch.Tensor, tau: float) -> list[float]:
    """``-log( sum_{l != l'} e^{U_il.U_il'/tau} / sum_l sum_{(j,m) != (i,l)} e^{U_il.U_jm/tau} )`` per instance."""
    U = views.tolist()
    V, n = len(U), len(U[0])
    rows = []
    for i in range(n):
        num = sum(math.exp(_dot(U[a][i], U[b][i]) / tau) for a in range(V) for b in range(V) if b != a)
        if num == 0.0:
            continue
        den = 0.0
        for a in range(V):
            for j in range(n):
                for b in range(V):
                    if (j, b) != (i, a):
                        den += math.exp(_dot(U[a][i], U[b][j]) / tau)
        rows.append(-math.log(num / den))
    return rows


def oracle_mv_dhel_rows(views: torch.Tensor, tau: float) -> list[float]:
    """``-log sum_{l < l'} e^{U_il.U_il'/tau} + sum_l log sum_{j != i} e^{U_il.U_jl/tau}`` per instance."""
    U = views.tolist()
    V, n = len(U), len(U[0])
    rows = []
    for i in range(n):
        num = sum(math.exp(_dot(U[a][i], U[b][i]) / tau) for a in range(V) for b in range(a + 1, V))
        if num == 0.0 or n < 2:
            continue
        uniform = 0.0
        for a in range(V):
            uniform += math.log(sum(math.exp(_dot(U[a][i], U[a][j]) / tau) for j in range(n) if j != i))
        rows.append(-math.log(num) + uniform)
    return rows


def oracle_ntxent_denominators(views: torch.Tensor, tau: float) -> tuple[list[float], list[float], list[float]]:
    """``s_i = u_i.v_i`` and the NT-Xent denominators ``D_i^(1)``, ``D_i^(2)`` of the two views' anchors."""
    u, v = views[0].tolist(), views[1].tolist()
    n = len(u)
    s = [_dot(u[i], v[i]) for i in range(n)]
    d1 = [sum(math.exp(_dot(u[i], c) / tau) for k, c in enumerate(u + v) if k != i) for i in range(n)]
    d2 = [sum(math.exp(_dot(v[i], c) / tau) for k, c in enumerate(u + v) if k != n + i) for i in range(n)]
    return s, d1, d2


# ----------------------------------------------------------------------------- MV-InfoNCE


@pytest.mark.parametrize(("V", "n", "tau", "seed"), [(2, 4, 0.5, 0), (3, 5, 0.1, 1), (4, 3, 1.0, 2), (2, 1, 0.5, 3)])
def test_mv_infonce_matches_oracle(V, n, tau, seed):
    views, obj = _views(V, n, d=4, seed=seed), _get("mv_infonce", temperature=tau)
    assert obj(views).item() == pytest.approx(_mean(oracle_mv_infonce_rows(views, _tau(obj))), abs=1e-10)


def test_mv_infonce_gradient_matches_finite_differences():
    views, obj = _views(3, 3, d=3, seed=4), _get("mv_infonce", temperature=0.3)
    ref = _fd_grad(lambda z: _mean(oracle_mv_infonce_rows(z, _tau(obj))), views)
    torch.testing.assert_close(_grad(obj, views), ref, atol=1e-6, rtol=1e-6)


def test_mv_infonce_two_views_is_averaged_ntxent_denominator_not_ntxent():
    views, obj = _views(2, 6, d=5, seed=5), _get("mv_infonce", temperature=0.3)
    tau = _tau(obj)
    s, d1, d2 = oracle_ntxent_denominators(views, tau)
    per_instance = [-math.log(math.exp(si / tau) / ((a + b) / 2)) for si, a, b in zip(s, d1, d2)]
    for got, want in zip(oracle_mv_infonce_rows(views, tau), per_instance, strict=True):
        assert got == pytest.approx(want, abs=1e-10)
    loss = obj(views).item()
    assert loss == pytest.approx(_mean(per_instance), abs=1e-10)
    ntxent = _get("ntxent", temperature=0.3)(views).item()
    assert abs(loss - ntxent) > 1e-3


def test_mv_infonce_single_view_is_zero_with_finite_gradient():
    views = _views(1, 4, seed=6).requires_grad_(True)
    loss = _get("mv_infonce")(views)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.isfinite(views.grad).all()


# ----------------------------------------------------------------------------- MV-DHEL


@pytest.mark.parametrize(("V", "n", "tau", "seed"), [(2, 4, 0.5, 7), (3, 5, 0.1, 8), (5, 3, 1.0, 9)])
def test_mv_dhel_matches_oracle(V, n, tau, seed):
    views, obj = _views(V, n, d=4, seed=seed), _get("mv_dhel", temperature=tau)
    assert obj(views).item() == pytest.approx(_mean(oracle_mv_dhel_rows(views, _tau(obj))), abs=1e-10)


def test_mv_dhel_gradient_matches_finite_differences():
    views, obj = _views(3, 3, d=3, seed=10), _get("mv_dhel", temperature=0.3)
    ref = _fd_grad(lambda z: _mean(oracle_mv_dhel_rows(z, _tau(obj))), views)
    torch.testing.assert_close(_grad(obj, views), ref, atol=1e-6, rtol=1e-6)


def test_mv_dhel_two_views_is_sum_of_dhel_directions():
    views = _views(2, 7, d=5, seed=11)
    mv, dhel = _get("mv_dhel", temperature=0.3), _get("dhel", temperature=0.3)
    tau = _tau(mv)
    align = (views[0] * views[1]).sum(-1).mean().item() / tau
    expected = dhel(views).item() + dhel(views.flip(0)).item() + align
    assert mv(views).item() == pytest.approx(expected, abs=1e-10)


@pytest.mark.parametrize(("V", "n"), [(1, 4), (3, 1)])
def test_mv_dhel_degenerate_batches_are_zero_with_finite_gradient(V, n):
    views = _views(V, n, seed=14).requires_grad_(True)
    loss = _get("mv_dhel")(views)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.isfinite(views.grad).all()


# ----------------------------------------------------------------------------- both


@pytest.mark.parametrize("name", ["mv_infonce", "mv_dhel"])
def test_instance_permutation_invariance_and_no_tiling(name):
    views = _views(3, 6, d=4, seed=15)
    perm = torch.randperm(6, generator=torch.Generator().manual_seed(0))
    obj = _get(name)
    assert obj(views[:, perm]).item() == pytest.approx(obj(views).item(), abs=1e-12)
    with pytest.raises(TypeError, match=name):
        ContrastiveLoss(name, tile_size=2)


@pytest.mark.parametrize("name", ["mv_infonce", "mv_dhel"])
def test_learnable_temperature_gets_gradient(name):
    obj = _get(name, learnable_temperature=True)
    loss = obj(_views(3, 4, seed=16))
    (g,) = torch.autograd.grad(loss, [obj.temperature.log_scale])
    assert torch.isfinite(g) and g.abs() > 0


def test_info():
    for name in ("mv_infonce", "mv_dhel"):
        info = type(get(name)).info
        assert info.name == name
        assert info.status is Status.CODE
        assert info.default_temperature == 0.5
    with pytest.raises(ValueError, match=r"\(V, n, d\)"):
        get("mv_dhel")(torch.randn(4, 3))
