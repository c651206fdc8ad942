"""DCL, DCLW and DHEL against float64 loop oracles, their spec properties, and tiled parity."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from oracles import fd_grad as _fd_grad

from contrastkit import ContrastiveLoss
from contrastkit.objectives import Status, decoupled, get, infonce  # noqa: F401 - registers

# ----------------------------------------------------------------------------- helpers


def _views(n: int, d: int = 3, seed: int = 0, v: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(v, n, d, generator=g, dtype=torch.float64), dim=-1)


def _dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b))


def _lse(values: list[float]) -> float:
    if not values:
        return -math.inf
    m = max(values)
    return m + math.log(sum(math.exp(v - m) for v in values))


def _get(name: str, **hparams):
    """The objective in float64 (the temperature buffer is float32 by default)."""
    return get(name, **hparams).double()


def _tau(obj) -> float:
    """The temperature the objective actually uses (its log-scale is stored in float32)."""
    return 1.0 / float(obj.temperature.scale())


def _grad(loss_fn, z: torch.Tensor) -> tuple[float, torch.Tensor]:
    z = z.detach().clone().requires_grad_(True)
    loss = loss_fn(z)
    (g,) = torch.autograd.grad(loss, z)
    return float(loss.detach()), g


# ----------------------------------------------------------------------------- oracles


def oracle_ntxent_rows(views: torch.Tensor, tau: float) -> list[tuple[float, float]]:
    """Per anchor (NT-Xent loss, NT-Xent probability of the positive), 2n anchors view-major."""
    z = views.reshape(-1, views.shape[-1]).tolist()
    n2 = len(z)
    n = n2 // 2
    out = []
    for k in range(n2):
        partner = (k + n) % n2
        den = sum(math.exp(_dot(z[k], z[c]) / tau) for c in range(n2) if c != k)
        p = math.exp(_dot(z[k], z[partner]) / tau) / den
        out.append((-math.log(p), p))
    return out


def oracle_dcl_rows(views: torch.Tensor, tau: float, weights: list[float] | None = None) -> list[float]:
    """Per anchor ``-w_i <z_i^1, z_i^2>/tau + log sum_{l, j != i} exp(<z_k, z_j^l>/tau)``; [] rows dropped."""
    z1, z2 = views[0].tolist(), views[1].tolist()
    n = len(z1)
    w = [1.0] * n if weights is None else weights
    rows = []
    for k, zs in ((0, z1), (1, z2)):
        for i in range(n):
            anchor = zs[i]
            negs = [_dot(anchor, other[j]) / tau for other in (z1, z2) for j in range(n) if j != i]
            if not negs:
                continue
            rows.append(-w[i] * _dot(z1[i], z2[i]) / tau + _lse(negs))
    return rows


def oracle_dclw_weights(views: torch.Tensor, sigma: float) -> list[float]:
    z1, z2 = views[0].tolist(), views[1].tolist()
    n = len(z1)
    e = [math.exp(_dot(z1[i], z2[i]) / sigma) for i in range(n)]
    mean = sum(e) / n
    return [2.0 - ei / mean for ei in e]


def oracle_dhel_rows(views: torch.Tensor, tau: float) -> list[float]:
    u, v = views[0].tolist(), views[1].tolist()
    n = len(u)
    rows = []
    for i in range(n):
        negs = [_dot(u[i], u[j]) / tau for j in range(n) if j != i]
        if negs:
            rows.append(-_dot(u[i], v[i]) / tau + _lse(negs))
    return rows


def _mean(rows: list[float]) -> float:
    return sum(rows) / len(rows) if rows else 0.0


# ----------------------------------------------------------------------------- DCL


@pytest.mark.parametrize(("n", "tau", "seed"), [(2, 0.1, 0), (5, 0.5, 1), (7, 1.0, 2)])
def test_dcl_matches_oracle(n, tau, seed):
    views, obj = _views(n, d=4, seed=seed), _get("dcl", temperature=tau)
    assert obj(views).item() == pytest.approx(_mean(oracle_dcl_rows(views, _tau(obj))), abs=1e-10)


def test_dcl_gradient_matches_finite_differences():
    views, obj = _views(4, d=3, seed=3), _get("dcl", temperature=0.3)
    _, g = _grad(obj, views)
    ref = _fd_grad(lambda z: _mean(oracle_dcl_rows(z, _tau(obj))), views)
    torch.testing.assert_close(g, ref, atol=1e-6, rtol=1e-6)


def test_dcl_is_ntxent_plus_log_one_minus_p_per_anchor():
    views, obj = _views(6, d=5, seed=4), _get("dcl", temperature=0.3)
    tau = _tau(obj)
    nt = oracle_ntxent_rows(views, tau)
    dcl_rows = oracle_dcl_rows(views, tau)
    for dcl_i, (nt_i, p_i) in zip(dcl_rows, nt, strict=True):
        assert dcl_i == pytest.approx(nt_i + math.log(1 - p_i), abs=1e-10)
        assert dcl_i < nt_i
    expected = sum(nt_i + math.log(1 - p_i) for nt_i, p_i in nt) / len(nt)
    dcl = obj(views)
    assert dcl.item() == pytest.approx(expected, abs=1e-10)
    assert dcl.item() < _get("ntxent", temperature=0.3)(views).item()


def test_dcl_can_be_negative():
    base = _views(4, d=8, seed=5)[0]
    views = torch.stack([base, F.normalize(base + 1e-3, dim=-1)])  # near-identical views
    assert _get("dcl", temperature=0.1)(views).item() < 0


def test_dcl_single_instance_is_dropped_with_finite_gradient():
    views = _views(1, d=3, seed=6).requires_grad_(True)
    loss = _get("dcl")(views)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.isfinite(views.grad).all()


def test_dcl_rejects_wrong_view_count():
    with pytest.raises(ValueError, match=r"\(2, n, d\)"):
        _get("dcl")(_views(3, v=3))


# ----------------------------------------------------------------------------- DCLW


def test_dclw_weights_average_to_one_and_penalise_easy_positives():
    views = _views(8, d=4, seed=7)
    w = decoupled.dclw_weights(views, sigma=0.5)
    assert w.mean().item() == pytest.approx(1.0, abs=1e-12)
    torch.testing.assert_close(w, torch.tensor(oracle_dclw_weights(views, 0.5), dtype=torch.float64))
    s = (views[0] * views[1]).sum(-1)
    order = s.argsort()
    assert (w[order].diff() < 0).all()  # higher positive similarity, lower weight


@pytest.mark.parametrize(("n", "tau", "sigma", "seed"), [(3, 0.1, 0.5, 8), (6, 0.5, 0.2, 9), (1, 0.1, 0.5, 10)])
def test_dclw_matches_oracle(n, tau, sigma, seed):
    views, obj = _views(n, d=4, seed=seed), _get("dclw", temperature=tau, sigma=sigma)
    expected = _mean(oracle_dcl_rows(views, _tau(obj), oracle_dclw_weights(views, sigma)))
    assert obj(views).item() == pytest.approx(expected, abs=1e-10)


def test_dclw_detached_weights_are_constants():
    views, sigma, obj = _views(4, d=3, seed=11), 0.5, _get("dclw", temperature=0.3)
    tau = _tau(obj)
    w0 = oracle_dclw_weights(views, sigma)
    _, g = _grad(obj, views)
    ref = _fd_grad(lambda z: _mean(oracle_dcl_rows(z, tau, w0)), views)
    torch.testing.assert_close(g, ref, atol=1e-6, rtol=1e-6)


def test_dclw_undetached_weights_carry_gradient():
    views, sigma, obj = _views(4, d=3, seed=11), 0.3, _get("dclw", temperature=0.3, sigma=0.3, detach_weights=False)
    tau = _tau(obj)
    _, g = _grad(obj, views)
    ref = _fd_grad(lambda z: _mean(oracle_dcl_rows(z, tau, oracle_dclw_weights(z, sigma))), views)
    torch.testing.assert_close(g, ref, atol=1e-6, rtol=1e-6)
    _, g_detached = _grad(_get("dclw", temperature=0.3, sigma=0.3), views)
    assert (g - g_detached).abs().max() > 1e-4


def test_dclw_with_equal_positive_similarities_is_dcl():
    base = _views(5, d=4, seed=12)[0]
    views = torch.stack([base, base])  # s_ii = 1 for all i: every weight is 1
    assert _get("dclw", temperature=0.2)(views).item() == pytest.approx(_get("dcl", temperature=0.2)(views).item())


def test_dclw_is_not_tileable():
    with pytest.raises(TypeError, match="dclw"):
        ContrastiveLoss("dclw", tile_size=2)


# ----------------------------------------------------------------------------- DHEL


@pytest.mark.parametrize(("n", "tau", "seed"), [(2, 0.5, 13), (6, 0.1, 14), (9, 1.0, 15)])
def test_dhel_matches_oracle(n, tau, seed):
    views, obj = _views(n, d=4, seed=seed), _get("dhel", temperature=tau)
    assert obj(views).item() == pytest.approx(_mean(oracle_dhel_rows(views, _tau(obj))), abs=1e-10)


def test_dhel_gradient_matches_finite_differences():
    views, obj = _views(4, d=3, seed=16), _get("dhel", temperature=0.3)
    _, g = _grad(obj, views)
    ref = _fd_grad(lambda z: _mean(oracle_dhel_rows(z, _tau(obj))), views)
    torch.testing.assert_close(g, ref, atol=1e-6, rtol=1e-6)


def test_dhel_targets_layout():
    W, M, _ = decoupled.dhel_targets(3).dense(dtype=torch.float64)
    expected_M = torch.tensor(
        [[1, 0, 0, 0, 1, 1], [0, 1, 0, 1, 0, 1], [0, 0, 1, 1, 1, 0]],
        dtype=torch.bool,
    )
    assert torch.equal(M, expected_M)
    assert torch.equal(W, torch.eye(3, 6, dtype=torch.float64))


def test_dhel_ignores_other_view_negatives():
    views = _views(5, d=4, seed=17)
    moved = views.clone()
    moved[1, 1:] = _views(4, d=4, seed=18)[0]  # change v_j for j != 0 only
    obj = _get("dhel", temperature=0.5)
    rows_a, rows_b = oracle_dhel_rows(views, _tau(obj)), oracle_dhel_rows(moved, _tau(obj))
    assert rows_a[0] == pytest.approx(rows_b[0])
    assert obj(moved).item() == pytest.approx(_mean(rows_b), abs=1e-10)


def test_dhel_single_instance_is_dropped_with_finite_gradient():
    views = _views(1, d=3, seed=19).requires_grad_(True)
    loss = _get("dhel")(views)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.isfinite(views.grad).all()


# ----------------------------------------------------------------------------- tiled parity


@pytest.mark.parametrize("name", ["dcl", "dhel"])
@pytest.mark.parametrize(("tile_size", "tile_cols"), [(1, None), (3, None), (4, 3), (64, None), (5, 7)])
def test_tiled_parity(name, tile_size, tile_cols):
    views = torch.randn(2, 7, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(20))
    views = F.normalize(views, dim=-1)
    dense = _get(name, temperature=0.3)
    loss_d, g_d = _grad(dense, views)
    tiled = ContrastiveLoss(name, temperature=0.3, similarity="dot", tile_size=tile_size, tile_cols=tile_cols).double()
    loss_t, g_t = _grad(tiled, views)
    assert loss_t == pytest.approx(loss_d, abs=1e-12)
    torch.testing.assert_close(g_t, g_d, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("name", ["dcl", "dhel"])
def test_tiled_parity_learnable_temperature(name):
    views = _views(6, d=4, seed=21)
    dense = get(name, temperature=0.2, learnable_temperature=True).double()
    tiled = ContrastiveLoss(get(name, temperature=0.2, learnable_temperature=True).double(), tile_size=4)
    grads = []
    for fn in (dense, tiled):
        loss = fn(views)
        params = [p for p in fn.parameters()]
        grads.append((float(loss.detach()), torch.autograd.grad(loss, params)[0]))
    assert grads[0][0] == pytest.approx(grads[1][0], abs=1e-12)
    torch.testing.assert_close(grads[0][1], grads[1][1])


def test_info():
    for name, status in (("dcl", Status.PAPER), ("dclw", Status.PAPER), ("dhel", Status.PAPER)):
        info = type(get(name)).info
        assert info.name == name
        assert info.status is status
    assert type(_get("dcl")).info.default_temperature == 0.1
    assert _get("dclw").sigma == 0.5
    assert _get("dclw").detach_weights is True
