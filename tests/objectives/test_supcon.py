"""SupCon L_out and SoftCon against float64 loop oracles; SupCon/NT-Xent identity; tiled parity."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from contrastkit import ContrastiveLoss
from contrastkit.objectives import get, supcon  # noqa: F401 - registers supcon/softcon
from contrastkit.objectives.base import Status
from contrastkit.objectives.supcon import LabelSimilarity, SoftPairLoss, label_similarity


def unit(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g, dtype=torch.float64), dim=-1)


def tau_of(obj):
    """The tau the objective really uses (its Temperature stores log(1/tau) in float32)."""
    return 1.0 / obj.temperature.scale().double().item()


def dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def supcon_oracle(views, labels, tau):
    V, n, _ = views.shape
    rows = [views[v, i].tolist() for v in range(V) for i in range(n)]
    ys = [int(labels[i]) for _ in range(V) for i in range(n)]
    losses = []
    for i, zi in enumerate(rows):
        others = [a for a in range(len(rows)) if a != i]
        pos = [p for p in others if ys[p] == ys[i]]
        if not pos:
            continue
        log_den = math.log(sum(math.exp(dot(zi, rows[a]) / tau) for a in others))
        losses.append(-sum(dot(zi, rows[p]) / tau - log_den for p in pos) / len(pos))
    return sum(losses) / len(losses) if losses else 0.0


@pytest.mark.parametrize("V", [2, 3])
def test_supcon_matches_loop_oracle(V):
    views = unit(V, 6, 5, seed=V)
    labels = torch.tensor([0, 1, 0, 2, 1, 0])
    obj = get("supcon", temperature=0.3)
    assert obj(views, labels).item() == pytest.approx(supcon_oracle(views, labels, tau_of(obj)), rel=1e-12)


def test_supcon_unique_labels_two_views_is_ntxent():
    views = unit(2, 7, 4, seed=3)
    ntxent = get("ntxent", temperature=0.2)(views)
    assert get("supcon", temperature=0.2)(views, torch.arange(7) * 3).item() == pytest.approx(ntxent.item(), rel=1e-12)
    assert get("supcon", temperature=0.2)(views).item() == pytest.approx(ntxent.item(), rel=1e-12)


def test_supcon_base_tau_scales_by_tau_over_base_tau():
    views, labels = unit(2, 5, 4, seed=4), torch.tensor([0, 0, 1, 1, 2])
    plain = get("supcon", temperature=0.1)(views, labels)
    obj = get("supcon", temperature=0.1, base_tau=0.07)
    assert obj.loss_factor() == pytest.approx(0.1 / 0.07, rel=1e-6)
    assert obj(views, labels).item() == pytest.approx(plain.item() * obj.loss_factor(), rel=1e-12)


def original_code_loss(views, labels, tau):
    """The original implementation's arithmetic: 0/0 for an anchor without positives."""
    V, n, _ = views.shape
    z = views.reshape(V * n, -1)
    y = labels.repeat(V)
    mask = (y[:, None] == y[None, :]).double().fill_diagonal_(0)
    logits_mask = torch.ones_like(mask).fill_diagonal_(0)
    logits = z @ z.T / tau
    log_prob = logits - torch.log((torch.exp(logits) * logits_mask).sum(1, keepdim=True))
    return (-(mask * log_prob).sum(1) / mask.sum(1)).mean()


def test_supcon_drops_anchors_without_positives():
    views = unit(1, 6, 4, seed=5).requires_grad_(True)
    labels = torch.tensor([0, 1, 0, 2, 3, 1])  # labels 2 and 3 are singletons with one view
    assert torch.isnan(original_code_loss(views.detach(), labels, 0.5))
    obj = get("supcon", temperature=0.5)
    loss = obj(views, labels)
    assert loss.item() == pytest.approx(supcon_oracle(views.detach(), labels, tau_of(obj)), rel=1e-12)
    loss.backward()
    assert torch.isfinite(views.grad).all() and views.grad.abs().sum() > 0


def test_supcon_no_positive_anywhere_is_zero_with_finite_grad():
    views = unit(1, 4, 3, seed=6).requires_grad_(True)
    loss = get("supcon")(views, torch.arange(4))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(views.grad).all()


def test_supcon_gradcheck():
    views = unit(2, 4, 3, seed=7).requires_grad_(True)
    labels = torch.tensor([0, 1, 0, 1])
    obj = get("supcon", temperature=0.5)
    assert torch.autograd.gradcheck(lambda v: obj(v, labels), (views,))


@pytest.mark.parametrize(("tile", "cols"), [(1, None), (3, None), (4, 5), (7, 3), (64, None)])
@pytest.mark.parametrize("base_tau", [None, 0.07])
def test_supcon_tiled_parity(tile, cols, base_tau):
    views, labels = unit(3, 5, 4, seed=8), torch.tensor([0, 1, 0, 2, 1])
    dense_in = views.clone().requires_grad_(True)
    tiled_in = views.clone().requires_grad_(True)
    dense = get("supcon", temperature=0.2, base_tau=base_tau)(dense_in, labels)
    fn = ContrastiveLoss("supcon", temperature=0.2, base_tau=base_tau, similarity="dot", tile_size=tile, tile_cols=cols)
    tiled = fn(tiled_in, labels)
    dense.backward()
    tiled.backward()
    assert tiled.item() == pytest.approx(dense.item(), rel=1e-12)
    torch.testing.assert_close(tiled_in.grad, dense_in.grad, rtol=1e-10, atol=1e-12)


def test_supcon_info_and_shape_errors():
    obj = get("supcon")
    assert obj.info.status is Status.CODE and obj.info.default_temperature == 0.1
    with pytest.raises(ValueError, match="labels"):
        obj(unit(2, 3, 4), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="base_tau"):
        get("supcon", base_tau=0.0)


# ---------------------------------------------------------------- SoftCon


def cosine_label_oracle(Y):
    n = len(Y)
    w = [[0.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(n):
            ni, nj = math.sqrt(dot(Y[i], Y[i])), math.sqrt(dot(Y[j], Y[j]))
            w[i][j] = 1.0 if i == j else (dot(Y[i], Y[j]) / (ni * nj) if ni > 0 and nj > 0 else 0.0)
    return w


def jaccard_label_oracle(Y):
    n = len(Y)
    w = [[0.0] * n for _ in range(n)]
    for i in range(n):
        for j in range(n):
            inter = sum(min(a, b) for a, b in zip(Y[i], Y[j]))
            union = sum(max(a, b) for a, b in zip(Y[i], Y[j]))
            w[i][j] = 1.0 if i == j else (inter / union if union > 0 else 0.0)
    return w


def softcon_oracle(views, Y, tau, weight, w, pair_loss):
    z, zp = views[0].tolist(), views[1].tolist()
    n = len(z)
    cos = [[dot(z[i], zp[j]) for j in range(n)] for i in range(n)]
    lse = [math.log(sum(math.exp(cos[i][j] / tau) for j in range(n))) for i in range(n)]
    hard = sum(lse[i] - cos[i][i] / tau for i in range(n)) / n
    if pair_loss == "sigmoid_bce":
        total = 0.0
        for i in range(n):
            for j in range(n):
                p = 1 / (1 + math.exp(-cos[i][j] / tau))
                total -= w[i][j] * math.log(p) + (1 - w[i][j]) * math.log(1 - p)
        soft = total / n**2
    elif pair_loss == "mse":
        soft = sum((cos[i][j] - w[i][j]) ** 2 for i in range(n) for j in range(n)) / n**2
    else:
        soft = sum(sum(w[i][j] * (lse[i] - cos[i][j] / tau) for j in range(n)) / sum(w[i]) for i in range(n)) / n
    return hard + weight * soft


LABELS = torch.tensor([[1, 0, 1, 0], [1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 1, 1], [1, 0, 1, 0]], dtype=torch.float64)


@pytest.mark.parametrize("pair_loss", list(SoftPairLoss))
@pytest.mark.parametrize("kind", list(LabelSimilarity))
def test_softcon_matches_loop_oracle(pair_loss, kind):
    views = unit(2, 5, 6, seed=9)
    Y = LABELS.tolist()
    w = cosine_label_oracle(Y) if kind is LabelSimilarity.COSINE else jaccard_label_oracle(Y)
    obj = get("softcon", temperature=0.5, label_similarity=kind, pair_loss=pair_loss, soft_weight=0.7)
    want = softcon_oracle(views, Y, tau_of(obj), 0.7, w, pair_loss.value)
    assert obj(views, LABELS).item() == pytest.approx(want, rel=1e-12)


def test_softcon_defaults_are_placeholders_cosine_bce_weight_one():
    obj = get("softcon")
    assert obj.info.status is Status.PARTIAL and "placeholder" in obj.info.notes.lower()
    views = unit(2, 5, 6, seed=10)
    want = softcon_oracle(views, LABELS.tolist(), tau_of(obj), 1.0, cosine_label_oracle(LABELS.tolist()), "sigmoid_bce")
    assert obj(views, LABELS).item() == pytest.approx(want, rel=1e-12)


def test_softcon_hard_term_is_simcse_and_callable_similarity():
    views = unit(2, 5, 6, seed=11)
    simcse = get("simcse", temperature=0.2)(views)
    hard_only = get("softcon", temperature=0.2, soft_weight=0.0)(views, LABELS)
    assert hard_only.item() == pytest.approx(simcse.item(), rel=1e-12)
    identity = lambda Y: torch.eye(Y.shape[0], dtype=Y.dtype)  # noqa: E731
    obj = get("softcon", temperature=0.2, label_similarity=identity, pair_loss="mse")
    eye = [[float(i == j) for j in range(5)] for i in range(5)]
    assert obj(views, LABELS).item() == pytest.approx(
        softcon_oracle(views, None, tau_of(obj), 1.0, eye, "mse"), rel=1e-12
    )


def test_label_similarity_diagonal_is_one_even_for_empty_labels():
    w = label_similarity(LABELS)
    assert torch.equal(w.diagonal(), torch.ones(5, dtype=w.dtype)) and w[2].sum() == 1.0


def test_softcon_gradients_finite():
    views = unit(2, 5, 6, seed=12).requires_grad_(True)
    get("softcon", temperature=0.1)(views, LABELS).backward()
    assert torch.isfinite(views.grad).all() and views.grad[1].abs().sum() > 0
