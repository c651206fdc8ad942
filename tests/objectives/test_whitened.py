"""WhitenedCSE: shuffled group whitening against a numpy oracle; identity covariance; gradients; loss oracle."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from contrastkit.objectives import get, whitened  # noqa: F401 - registers whitenedcse
from contrastkit.objectives.base import Status
from contrastkit.objectives.whitened import shuffled_group_whitening


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def perm(D, seed):
    return torch.randperm(D, generator=torch.Generator().manual_seed(seed))


def tau_of(obj):
    return 1.0 / obj.temperature.scale().double().item()


def sgw_oracle(x, permutation, groups, eps=1e-5):
    """numpy SGW; also returns each group's whitening matrix (in permuted coordinates)."""
    x, p = np.asarray(x, dtype=np.float64), list(permutation.tolist())
    N, D = x.shape
    size = D // groups
    xp = np.stack([x[:, p[j]] for j in range(D)], axis=1)
    outp, mats = np.zeros_like(xp), []
    for g in range(groups):
        cols = xp[:, g * size : (g + 1) * size]
        centred = cols - cols.mean(axis=0)
        lam, U = np.linalg.eigh(centred.T @ centred / N)
        W = U @ np.diag(1 / np.sqrt(np.maximum(lam, 0) + eps)) @ U.T
        outp[:, g * size : (g + 1) * size] = centred @ W
        mats.append(W)
    out = np.zeros_like(x)
    for j in range(D):
        out[:, p[j]] = outp[:, j]
    return out, mats


def test_sgw_matches_numpy_oracle():
    x, p = randn(20, 12, seed=1), perm(12, 2)
    out = shuffled_group_whitening(x, 3, permutation=p)
    want, _ = sgw_oracle(x, p, 3)
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-9, atol=1e-10)


def test_sgw_group_covariance_is_identity_up_to_eps():
    x, p = randn(64, 12, seed=3) @ randn(12, 12, seed=4), perm(12, 5)  # correlated features
    out = shuffled_group_whitening(x, 4, permutation=p)
    grouped = out[:, p].reshape(64, 4, 3)
    assert grouped.mean(0).abs().max() < 1e-12
    for g in range(4):
        cov = grouped[:, g].T @ grouped[:, g] / 64
        torch.testing.assert_close(cov, torch.eye(3, dtype=cov.dtype), rtol=0, atol=1e-4)
    assert (x.T @ x / 64 - torch.eye(12, dtype=x.dtype)).abs().max() > 0.5  # the input was far from white


def test_sgw_permutation_comes_from_generator_and_matters():
    x = randn(30, 12, seed=6)
    a = shuffled_group_whitening(x, 3, torch.Generator().manual_seed(1))
    b = shuffled_group_whitening(x, 3, torch.Generator().manual_seed(1))
    c = shuffled_group_whitening(x, 3, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.allclose(a, c)
    np.testing.assert_allclose(a.numpy(), sgw_oracle(x, perm(12, 1), 3)[0], rtol=1e-9, atol=1e-10)


def expected_constant_map_grad(R, p, mats, groups):
    """d<out, R>/dx when the whitening matrices are constants: centring then the fixed linear map."""
    R, plist = R.numpy(), p.tolist()
    D = R.shape[1]
    size = D // groups
    Rp = np.stack([R[:, plist[j]] for j in range(D)], axis=1)
    gp = np.zeros_like(Rp)
    for g, W in enumerate(mats):
        dc = Rp[:, g * size : (g + 1) * size] @ W.T
        gp[:, g * size : (g + 1) * size] = dc - dc.mean(axis=0)
    grad = np.zeros_like(R)
    for j in range(D):
        grad[:, plist[j]] = gp[:, j]
    return grad


def test_no_gradient_through_whitening_matrix_by_default():
    x, p, R = randn(16, 6, seed=7).requires_grad_(True), perm(6, 8), randn(16, 6, seed=9)
    (shuffled_group_whitening(x, 2, permutation=p) * R).sum().backward()
    _, mats = sgw_oracle(x.detach(), p, 2)
    np.testing.assert_allclose(x.grad.numpy(), expected_constant_map_grad(R, p, mats, 2), rtol=1e-8, atol=1e-10)

    x2 = x.detach().clone().requires_grad_(True)
    (shuffled_group_whitening(x2, 2, permutation=p, grad_through_whitening=True) * R).sum().backward()
    assert not torch.allclose(x2.grad, x.grad)
    fn = lambda v: shuffled_group_whitening(v, 2, permutation=p, grad_through_whitening=True)  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x.detach().clone().requires_grad_(True),))


def test_sgw_shape_errors():
    with pytest.raises(ValueError, match=r"N=4 <= D/G=4"):
        shuffled_group_whitening(randn(4, 8), 2)
    with pytest.raises(ValueError, match="not divisible"):
        shuffled_group_whitening(randn(10, 8), 3)
    with pytest.raises(ValueError, match="permutation"):
        shuffled_group_whitening(randn(10, 8), 2, permutation=torch.arange(6))


def loss_oracle(views, perms, groups, tau, head=None):
    white = [sgw_oracle(v, p, groups)[0] for v, p in zip(views, perms)]
    if head is not None:
        white = [head(w) for w in white]
    unit = [[[t / math.sqrt(sum(u * u for u in row)) for t in row] for row in w.tolist()] for w in white]
    n, total = len(unit[0]), 0.0
    for k in range(1, len(unit)):
        term = 0.0
        for i in range(n):
            logits = [sum(a * b for a, b in zip(unit[0][i], unit[k][j])) / tau for j in range(n)]
            term += math.log(sum(math.exp(v) for v in logits)) - logits[i]
        total += term / n
    return total


@pytest.mark.parametrize("with_head", [False, True])
def test_whitenedcse_matches_loop_oracle(with_head):
    views, perms = randn(3, 10, 8, seed=10), torch.stack([perm(8, s) for s in (1, 2, 3)])
    obj = get("whitenedcse", groups=4)
    head = torch.tanh if with_head else None
    loss = obj(views, head=head, permutations=perms)
    want = loss_oracle(views, perms, 4, tau_of(obj), head=np.tanh if with_head else None)
    assert loss.item() == pytest.approx(want, rel=1e-10)


def test_whitenedcse_is_a_sum_of_simcse_losses_with_per_view_statistics():
    views, perms = randn(3, 12, 6, seed=11), torch.stack([perm(6, s) for s in (4, 5, 6)])
    obj = get("whitenedcse", groups=2, temperature=0.1)
    white = obj.whiten(views, permutations=perms)
    for k in range(3):  # each view is whitened alone, with its own permutation
        torch.testing.assert_close(white[k], shuffled_group_whitening(views[k], 2, permutation=perms[k]))
    unit = F.normalize(white, dim=-1)
    simcse = get("simcse", temperature=0.1)
    expected = simcse(unit[[0, 1]]) + simcse(unit[[0, 2]])
    assert obj(views, permutations=perms).item() == pytest.approx(expected.item(), rel=1e-12)


def test_whitenedcse_generator_and_gradients():
    views = randn(3, 12, 8, seed=12).requires_grad_(True)
    obj = get("whitenedcse", groups=2)
    a = obj(views, generator=torch.Generator().manual_seed(0))
    b = obj(views, generator=torch.Generator().manual_seed(0))
    assert a.item() == b.item()
    a.backward()
    assert torch.isfinite(views.grad).all() and views.grad.abs().sum() > 0


def test_whitenedcse_info_and_errors():
    obj = get("whitenedcse")
    assert obj.info.status is Status.CODE and obj.num_pos == 3 and obj.groups == 128
    assert obj.info.default_temperature == 0.05 and not obj.grad_through_whitening
    with pytest.raises(ValueError, match=r"\(3, N, D\)"):
        obj(randn(2, 8, 256))
    with pytest.raises(ValueError, match="num_pos"):
        get("whitenedcse", num_pos=1)
