"""SupReMix (partial) against a float64 loop oracle; Mix-pos lambda; not-applicable columns; tiled parity."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from contrastkit import ContrastiveLoss
from contrastkit.objectives import get, supcon, supremix  # noqa: F401 - registers supcon/supremix
from contrastkit.objectives.base import Status
from contrastkit.objectives.supremix import Mixtures, mix_neg_columns, mix_pos_columns

FIELDS = ("left", "right", "lam", "owner", "positive")


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


def supremix_oracle(views, labels, mix, tau, tol, roles="owner"):
    V, n, _ = views.shape
    Z = [views[v, i].tolist() for v in range(V) for i in range(n)]
    y = [float(labels[i]) for _ in range(V) for i in range(n)]
    columns = []
    fields = [getattr(mix, f).tolist() for f in FIELDS]
    for left, right, lam, owner, positive in zip(*fields):
        emb = normalise([lam * a + (1 - lam) * b for a, b in zip(Z[left], Z[right])])
        columns.append((emb, lam * y[left] + (1 - lam) * y[right], owner, positive))
    losses = []
    for a in range(len(Z)):
        cands = [(dot(Z[a], Z[c]) / tau, abs(y[a] - y[c]) <= tol) for c in range(len(Z)) if c != a]
        for emb, label, owner, positive in columns:
            if owner == a:
                cands.append((dot(Z[a], emb) / tau, positive))
            elif roles == "label_rule":
                cands.append((dot(Z[a], emb) / tau, abs(y[a] - label) <= tol))
        pos = [s for s, is_pos in cands if is_pos]
        if not pos:
            continue
        lse = math.log(sum(math.exp(s) for s, _ in cands))
        losses.append(sum(lse - s for s in pos) / len(pos))
    return sum(losses) / len(losses) if losses else 0.0


LABELS = torch.tensor([0.0, 1.0, 1.0, 2.5, 3.0, 0.0])


def test_mix_pos_lambda_yields_the_anchor_label():
    y = torch.rand(12, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    same = (y[:, None] - y[None, :]).abs() <= 0.05
    mix = mix_pos_columns(y, same)
    assert mix.left.numel() > 0 and mix.positive.all()
    mixed_label = mix.lam * y[mix.left] + (1 - mix.lam) * y[mix.right]
    torch.testing.assert_close(mixed_label, y[mix.owner], rtol=0, atol=1e-12)
    assert (mix.lam > 0).all() and (mix.lam < 1).all()
    brackets = {
        (r, j, k)
        for r in range(12)
        for j in range(12)
        for k in range(12)
        if y[j] < y[r] < y[k] and abs(y[j] - y[r]) > 0.05 and abs(y[k] - y[r]) > 0.05
    }
    assert set(zip(mix.owner.tolist(), mix.left.tolist(), mix.right.tolist())) == brackets
    assert len(brackets) == mix.left.numel()


def test_mix_neg_pairs_are_anchor_inclusive_negatives():
    y = LABELS.double()
    same = (y[:, None] - y[None, :]).abs() <= 0
    lam = lambda m, g: torch.full((m,), 0.25)  # noqa: E731
    mix = mix_neg_columns(y, same, lambda_sampler=lam)
    want = {(r, j) for r in range(6) for j in range(6) if y[r] != y[j]}
    assert set(zip(mix.owner.tolist(), mix.right.tolist())) == want and len(want) == mix.left.numel()
    assert torch.equal(mix.left, mix.owner) and not mix.positive.any()
    label = 0.25 * y[mix.left] + 0.75 * y[mix.right]
    assert ((label - y[mix.owner]).abs() > 0).all()


@pytest.mark.parametrize(("tol", "roles", "V"), [(0.0, "owner", 2), (0.0, "label_rule", 2), (0.6, "owner", 1)])
def test_supremix_matches_loop_oracle(tol, roles, V):
    views = unit(V, 6, 4, seed=1)
    obj = get("supremix", temperature=0.5, tolerance=tol, roles=roles)
    y = LABELS.double().repeat(V)
    mix = obj.draw_mixtures(y, torch.Generator().manual_seed(2))
    assert bool(mix.positive.any()) and bool((~mix.positive).any())
    want = supremix_oracle(views, LABELS, mix, tau_of(obj), tol, roles)
    assert obj(views, LABELS, mix).item() == pytest.approx(want, rel=1e-12)


def test_not_applicable_columns_leave_other_rows_unchanged():
    views = unit(1, 6, 4, seed=3)
    obj = get("supremix", temperature=0.5)
    y = LABELS.double()
    mix = obj.draw_mixtures(y, torch.Generator().manual_seed(0))
    owned = Mixtures(*(getattr(mix, f)[mix.owner == 3] for f in FIELDS))
    assert owned.left.numel() > 0
    none = Mixtures(*(getattr(mix, f)[:0] for f in FIELDS))

    def rows(m):
        a, c, t = obj.matrix(views, LABELS, m)
        W, M, _ = t.dense(torch.float64)
        return obj.reducer.rows(a @ c.T / tau_of(obj), W, M).loss, W, M

    base, _, _ = rows(none)
    with_mix, W, M = rows(owned)
    others = torch.arange(6) != 3
    torch.testing.assert_close(with_mix[others], base[others], rtol=1e-13, atol=0)
    assert with_mix[3] != base[3]
    assert not M[others, 6:].any() and not W[others, 6:].any() and M[3, 6:].all()


def test_without_mixtures_supremix_is_supcon():
    views = unit(2, 6, 4, seed=4)
    labels = torch.tensor([0, 1, 1, 2, 3, 0])
    plain = get("supremix", temperature=0.3, mix_neg=False, mix_pos=False)(views, labels)
    assert plain.item() == pytest.approx(get("supcon", temperature=0.3)(views, labels).item(), rel=1e-12)


def test_rows_without_positive_are_dropped_and_grads_finite():
    views = unit(1, 5, 3, seed=5).requires_grad_(True)
    labels = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0])
    assert get("supremix", mix_pos=False)(views, labels).item() == 0.0
    obj = get("supremix", temperature=0.5)
    mix = obj.draw_mixtures(labels.double(), torch.Generator().manual_seed(1))
    loss = obj(views, labels, mix)  # rows with labels 0 and 4 have no bracket: dropped
    assert loss.item() == pytest.approx(supremix_oracle(views.detach(), labels, mix, tau_of(obj), 0.0), rel=1e-12)
    loss.backward()
    assert torch.isfinite(views.grad).all() and views.grad.abs().sum() > 0


def test_detach_mixtures_keeps_value_changes_gradient():
    views = unit(1, 6, 4, seed=6)
    mix = get("supremix").draw_mixtures(LABELS.double(), torch.Generator().manual_seed(3))
    grads, values = [], []
    for detach in (False, True):
        v = views.clone().requires_grad_(True)
        loss = get("supremix", detach_mixtures=detach)(v, LABELS, mix)
        loss.backward()
        grads.append(v.grad)
        values.append(loss.item())
    assert values[0] == pytest.approx(values[1], rel=1e-14)
    assert not torch.allclose(grads[0], grads[1])


@pytest.mark.parametrize(("tile", "cols"), [(1, None), (4, None), (5, 7), (64, None)])
def test_supremix_tiled_parity(tile, cols):
    views = unit(2, 6, 4, seed=7)
    obj = get("supremix", temperature=0.4)
    mix = obj.draw_mixtures(LABELS.double().repeat(2), torch.Generator().manual_seed(4))
    dense_in, tiled_in = views.clone().requires_grad_(True), views.clone().requires_grad_(True)
    dense = obj(dense_in, LABELS, mix)
    tiled = ContrastiveLoss(obj, similarity="dot", tile_size=tile, tile_cols=cols)(tiled_in, LABELS, mix)
    dense.backward()
    tiled.backward()
    assert tiled.item() == pytest.approx(dense.item(), rel=1e-12)
    torch.testing.assert_close(tiled_in.grad, dense_in.grad, rtol=1e-10, atol=1e-12)


def test_sampled_policy_is_reproducible_and_valid():
    y = torch.rand(10, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    obj = get("supremix", pair_policy="sampled", num_sampled=2, tolerance=0.05)
    a = obj.draw_mixtures(y, torch.Generator().manual_seed(5))
    b = obj.draw_mixtures(y, torch.Generator().manual_seed(5))
    assert all(torch.equal(getattr(a, f), getattr(b, f)) for f in ("left", "right", "lam", "owner"))
    pos, neg = a.positive, ~a.positive
    assert (a.owner[neg].bincount(minlength=10) == 2).all()
    assert (a.owner[pos].bincount(minlength=10) <= 2).all() and pos.any()
    torch.testing.assert_close(a.lam[pos] * y[a.left[pos]] + (1 - a.lam[pos]) * y[a.right[pos]], y[a.owner[pos]])
    assert ((y[a.right[neg]] - y[a.owner[neg]]).abs() > 0.05).all()


def test_supremix_info_and_errors():
    obj = get("supremix")
    assert obj.info.status is Status.PARTIAL and "placeholder" in obj.info.notes.lower()
    with pytest.raises(ValueError, match="pair_policy"):
        get("supremix", pair_policy="some")
    with pytest.raises(ValueError, match="labels"):
        obj(unit(2, 4, 3), torch.zeros(3))
