"""Distillation objectives (margin_mse, listwise_kl, and their combination with InfoNCE).

Against float64 loop oracles (plain Python, groups walked one document at a
time) and against sentence-transformers' own MarginMSELoss / DistillKLDivLoss.
"""

from __future__ import annotations

import math
import random

import pytest
import torch
from oracles import lse, mean_kept, r1_rows, to_lists

from contrastkit import ContrastiveLoss
from contrastkit.objectives import get
from contrastkit.objectives.distill import TeacherTargets

NAMES = ["margin_mse", "listwise_kl"]


def _problem(seed: int, rows: int = 5, cols: int = 9, empty_row: bool = True):
    """Random S and groups of 0-4 documents (a row may have several positives, or none)."""
    rng = random.Random(seed)
    S = [[rng.uniform(-1, 1) for _ in range(cols)] for _ in range(rows)]
    index, score, positive = [], [], []
    for i in range(rows):
        size = 0 if (empty_row and i == rows - 1) else rng.randint(1, 4)
        cols_i = rng.sample(range(cols), size)
        n_pos = rng.randint(1, size) if size else 0
        pad = 4 - size
        index.append(cols_i + [-1] * pad)
        score.append([rng.uniform(-5, 8) for _ in cols_i] + [0.0] * pad)
        positive.append([j < n_pos for j in range(size)] + [False] * pad)
    return S, index, score, positive


def _oracle_margin(L, index, score, positive, tau_t):
    rows = []
    for Li, idx, sc, pos in zip(L, index, score, positive, strict=True):
        members = [(c, s / tau_t, p) for c, s, p in zip(idx, sc, pos, strict=True) if c >= 0]
        errors = []
        for cp, tp, is_p in members:
            for cn, tn, is_pn in members:
                if is_p and not is_pn:
                    errors.append(((Li[cp] - Li[cn]) - (tp - tn)) ** 2)
        rows.append(sum(errors) / len(errors) if errors else None)
    return rows


def _oracle_kl(L, index, score, tau_t, factor=1.0):
    rows = []
    for Li, idx, sc in zip(L, index, score, strict=True):
        members = [(Li[c], s / tau_t) for c, s in zip(idx, sc, strict=True) if c >= 0]
        if len(members) < 2:
            rows.append(None)
            continue
        ls = lse([m[0] for m in members])
        lt = lse([m[1] for m in members])
        rows.append(factor * sum(math.exp(t - lt) * ((t - lt) - (s - ls)) for s, t in members))
    return rows


def _oracle(name, S, index, score, positive, *, tau, tau_t, weight=1.0, infonce_weight=0.0, squared=False):
    L = [[s / tau for s in row] for row in S]
    if name == "margin_mse":
        distill = _oracle_margin(L, index, score, positive, tau_t)
    else:
        distill = _oracle_kl(L, index, score, tau_t, tau**2 if squared else 1.0)
    nce = [None] * len(L)
    if infonce_weight:
        W = [[0.0] * len(S[0]) for _ in S]
        for i, (idx, pos) in enumerate(zip(index, positive, strict=True)):
            for c, p in zip(idx, pos, strict=True):
                if c >= 0 and p:
                    W[i][c] = 1.0
        nce = r1_rows(L, W, [[True] * len(S[0]) for _ in S])
    rows = []
    for d, n in zip(distill, nce, strict=True):
        if d is None and n is None:
            rows.append(None)
        else:
            rows.append(weight * (d or 0.0) + infonce_weight * (n or 0.0))
    return mean_kept(rows)


def _targets(index, score, positive, cols):
    return TeacherTargets.from_groups(index, score, positive, num_cols=cols)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("seed", range(4))
def test_matches_float64_oracle(name: str, seed: int) -> None:
    S, index, score, positive = _problem(seed)
    tau, tau_t = 0.5, 2.0
    obj = get(name, temperature=tau, teacher_temperature=tau_t)
    got = obj(torch.tensor(S, dtype=torch.float64), _targets(index, score, positive, len(S[0])))
    assert got.item() == pytest.approx(_oracle(name, S, index, score, positive, tau=tau, tau_t=tau_t), rel=1e-10)


@pytest.mark.parametrize("name", NAMES)
def test_combination_with_infonce_matches_oracle(name: str) -> None:
    S, index, score, positive = _problem(7)
    kw = {"tau": 0.1, "tau_t": 1.5, "weight": 0.7, "infonce_weight": 0.3}
    obj = get(name, temperature=0.1, teacher_temperature=1.5, weight=0.7, infonce_weight=0.3)
    got = obj(torch.tensor(S, dtype=torch.float64), _targets(index, score, positive, len(S[0])))
    assert got.item() == pytest.approx(_oracle(name, S, index, score, positive, **kw), rel=1e-10)


def test_kl_temperature_squared_matches_oracle() -> None:
    S, index, score, positive = _problem(3)
    obj = get("listwise_kl", temperature=0.2, temperature_squared=True)
    got = obj(torch.tensor(S, dtype=torch.float64), _targets(index, score, positive, len(S[0])))
    want = _oracle("listwise_kl", S, index, score, positive, tau=0.2, tau_t=1.0, squared=True)
    assert got.item() == pytest.approx(want, rel=1e-10)


@pytest.mark.parametrize("name", NAMES)
def test_gradient_is_finite_with_empty_rows_and_matches_finite_differences(name: str) -> None:
    S, index, score, positive = _problem(11)
    targets = _targets(index, score, positive, len(S[0]))
    obj = get(name, temperature=0.5)
    x = torch.tensor(S, dtype=torch.float64, requires_grad=True)
    obj(x, targets).backward()
    assert torch.isfinite(x.grad).all()
    assert x.grad[-1].abs().sum() == 0  # the empty last row contributes nothing
    eps, (i, j) = 1e-6, (0, index[0][0])
    plus, minus = [r[:] for r in S], [r[:] for r in S]
    plus[i][j] += eps
    minus[i][j] -= eps
    kw = {"tau": 0.5, "tau_t": 1.0}
    fd = (_oracle(name, plus, index, score, positive, **kw) - _oracle(name, minus, index, score, positive, **kw)) / (
        2 * eps
    )
    assert x.grad[i, j].item() == pytest.approx(fd, rel=1e-5, abs=1e-8)


def test_kl_is_zero_when_student_equals_teacher() -> None:
    index, positive = [[0, 1, 2]], [[True, False, False]]
    teacher = [[2.0, 1.0, -1.0]]
    S = torch.tensor([[0.4, 0.2, -0.2]], dtype=torch.float64)  # S / 0.2 == teacher
    loss = get("listwise_kl", temperature=0.2)(S, _targets(index, teacher, positive, 3))
    assert loss.item() == pytest.approx(0.0, abs=1e-12)


def test_without_teacher_scores_is_a_clear_error_unless_infonce_weighted() -> None:
    from contrastkit.objectives.targets import Targets

    S = torch.randn(3, 3)
    with pytest.raises(ValueError, match="no teacher scores"):
        get("listwise_kl")(S, Targets.diagonal(3))
    plain = get("infonce", temperature=0.1)(S, Targets.diagonal(3))
    mixed = get("listwise_kl", temperature=0.1, infonce_weight=1.0)(S, Targets.diagonal(3))
    assert mixed.item() == pytest.approx(plain.item(), rel=1e-6)


@pytest.mark.parametrize(
    "kwargs",
    [{"teacher_temperature": 0.0}, {"weight": 0.0, "infonce_weight": 0.0}, {"weight": -1.0}],
)
def test_bad_hyperparameters_are_rejected(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        get("margin_mse", **kwargs)


def test_targets_reject_mismatched_groups() -> None:
    with pytest.raises(ValueError, match="group_score"):
        TeacherTargets.from_groups([[0, 1]], [[1.0]], [[True, False]], num_cols=2)
    with pytest.raises(ValueError, match="column indices"):
        TeacherTargets.from_groups([[0, 5]], [[1.0, 0.0]], [[True, False]], num_cols=2)
    with pytest.raises(ValueError, match="finite"):
        TeacherTargets.from_groups([[0, 1]], [[1.0, float("nan")]], [[True, False]], num_cols=2)


def test_not_tileable() -> None:
    with pytest.raises(ValueError, match="row-separable"):
        ContrastiveLoss("listwise_kl", tile_size=4)


# ---------------------------------------------------------------- parity with sentence-transformers
def _st_layout(seed: int, n: int = 6, k: int = 3, d: int = 16):
    """ST's layout: query, one positive, k negatives per row; our in-batch candidates: positives then negatives."""
    g = torch.Generator().manual_seed(seed)
    q, p = torch.randn(n, d, generator=g), torch.randn(n, d, generator=g)
    negs = [torch.randn(n, d, generator=g) for _ in range(k)]
    labels = torch.randn(n, 1 + k, generator=g) * 3
    candidates = torch.cat([p, *negs])  # column of row i's j-th negative: n + j * n + i
    index = [[i] + [n + j * n + i for j in range(k)] for i in range(n)]
    positive = [[True] + [False] * k for _ in range(n)]
    targets = TeacherTargets.from_groups(index, labels, positive, num_cols=candidates.shape[0])
    return q, p, negs, labels, candidates, targets


def test_margin_mse_equals_sentence_transformers() -> None:
    from sentence_transformers.sentence_transformer.losses import MarginMSELoss

    q, p, negs, labels, candidates, targets = _st_layout(0)
    st = MarginMSELoss(model=None).compute_loss_from_embeddings([q, p, *negs], labels)
    ours = ContrastiveLoss("margin_mse", similarity="dot")(q, candidates, targets)
    assert ours.item() == pytest.approx(st.item(), rel=1e-5)


@pytest.mark.parametrize(("tau", "tau_t"), [(1.0, 1.0), (0.5, 2.0)])
def test_listwise_kl_equals_sentence_transformers(tau: float, tau_t: float) -> None:
    from sentence_transformers.sentence_transformer.losses import DistillKLDivLoss

    q, p, negs, labels, candidates, targets = _st_layout(1)
    st_loss = DistillKLDivLoss(model=None, student_temperature=tau, teacher_temperature=tau_t)
    st = st_loss.compute_loss_from_embeddings([q, p, *negs], labels)
    obj = get("listwise_kl", temperature=tau, teacher_temperature=tau_t, temperature_squared=True)
    ours = ContrastiveLoss(obj, similarity="dot")(q, candidates, targets)
    assert ours.item() == pytest.approx(st.item(), rel=1e-5)


def test_oracle_agrees_with_itself_on_list_helpers() -> None:
    # guard for the oracle: the KL of a row with itself is 0 and margins of equal scores are 0
    assert _oracle_kl([[1.0, 2.0]], [[0, 1]], [[1.0, 2.0]], 1.0) == [pytest.approx(0.0)]
    assert _oracle_margin([[1.0, 2.0]], [[0, 1]], [[1.0, 2.0]], [[True, False]], 1.0) == [pytest.approx(0.0)]
    assert to_lists(torch.tensor([1.0])) == [1.0]
