"""InfoNCE, CLIP, NT-Xent, SimCSE, supervised SimCSE (objectives.md section 1) against float64 loop oracles."""

from __future__ import annotations

import math
import random

import pytest
import torch
import torch.nn.functional as F
from oracles import (
    build_targets,
    logits,
    lse,
    matmul_t,
    numeric_grad,
    r1,
    r1_rows,
    random_problem,
    to_lists,
    transpose,
)

from contrastkit import ContrastiveLoss
from contrastkit.objectives import get, infonce, multipos  # noqa: F401 - multipos registers its objectives
from contrastkit.objectives.targets import Targets

TILES = [(1, None), (3, None), (7, 2), (7, None), (64, None), (3, 5)]
MATRIX_NAMES = ["infonce", "clip"]


def _t(x, dtype=torch.float64) -> torch.Tensor:
    return torch.tensor(x, dtype=dtype)


def _scale(obj) -> float:
    return float(obj.scale().detach())


def _views(V: int, n: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(V, n, d, generator=g, dtype=torch.float64), dim=-1)


def _embeddings(A: int, C: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(A, d, generator=g, dtype=torch.float64), torch.randn(C, d, generator=g, dtype=torch.float64)


def _run(obj, inputs: tuple, tile: tuple[int, int | None] | None):
    """Loss, input gradients and parameter gradients, densely (``tile=None``) or tiled via ContrastiveLoss."""
    leaves = [x.detach().clone().requires_grad_(True) if isinstance(x, torch.Tensor) else x for x in inputs]
    obj.zero_grad(set_to_none=True)
    if tile is None:
        matrix = len(leaves) == 3  # (anchors, candidates, targets), else (views,)
        loss = obj(leaves[0] @ leaves[1].T, leaves[2]) if matrix else obj(*leaves)
    else:
        loss = ContrastiveLoss(obj, tile_size=tile[0], tile_cols=tile[1], similarity="dot")(*leaves)
    loss.backward()
    grads = [x.grad for x in leaves if isinstance(x, torch.Tensor)]
    params = {n: p.grad.clone() for n, p in obj.named_parameters() if p.grad is not None}
    return loss.detach(), grads, params


def _assert_parity(obj, inputs: tuple, tiles=TILES) -> torch.Tensor:
    dense_loss, dense_grads, dense_params = _run(obj, inputs, None)
    for g in [*dense_grads, *dense_params.values()]:
        assert torch.isfinite(g).all()
    for tile in tiles:
        loss, grads, params = _run(obj, inputs, tile)
        torch.testing.assert_close(loss, dense_loss, rtol=1e-10, atol=1e-12, msg=f"loss, tile={tile}")
        for g, dg in zip(grads, dense_grads, strict=True):
            assert torch.isfinite(g).all()
            torch.testing.assert_close(g, dg, rtol=1e-9, atol=1e-12, msg=f"input grad, tile={tile}")
        assert params.keys() == dense_params.keys()
        for name, g in params.items():
            torch.testing.assert_close(g, dense_params[name], rtol=1e-5, atol=1e-7, msg=f"{name} grad, tile={tile}")
    return dense_loss


# ------------------------------------------------------------------ InfoNCE
@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_infonce_matches_r1_oracle(seed: int, soft: bool) -> None:
    S, W, M = random_problem(random.Random(seed), 6, 9, soft=soft)
    obj = get("infonce", temperature=0.3)
    loss = obj(_t(S), Targets(pos=_t(W), valid=_t(M, torch.bool)))
    expected = r1(logits(S, _scale(obj)), W, M)
    assert loss.item() == pytest.approx(expected, rel=1e-12, abs=1e-12)
    assert _scale(obj) == pytest.approx(1 / 0.3, rel=1e-6)


def test_infonce_soft_weights_are_row_normalised() -> None:
    S, W, M = random_problem(random.Random(5), 5, 7, soft=True)
    obj = get("infonce")
    loss = obj(_t(S), Targets(pos=_t(W), valid=_t(M, torch.bool)))
    doubled = obj(_t(S), Targets(pos=3 * _t(W), valid=_t(M, torch.bool)))
    torch.testing.assert_close(loss, doubled)
    unnormalised = r1(S, W, M, normalize=False)
    assert abs(loss.item() - unnormalised) > 1e-3


def test_infonce_gradient_matches_numeric_oracle() -> None:
    S, W, M = random_problem(random.Random(3), 4, 5, soft=True)
    obj = get("infonce", temperature=0.5)
    s = _t(S).requires_grad_(True)
    obj(s, Targets(pos=_t(W), valid=_t(M, torch.bool))).backward()
    numeric = numeric_grad(lambda X: r1(logits(X, _scale(obj)), W, M), S)
    torch.testing.assert_close(s.grad, _t(numeric), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("huge", [1e6, 1e30])
def test_infonce_masked_entries_have_no_influence(huge: float) -> None:
    S, W, M = random_problem(random.Random(7), 5, 8)
    obj = get("infonce", temperature=0.1)
    targets = Targets(pos=_t(W), valid=_t(M, torch.bool))
    S_huge = [[huge if not M[i][c] else S[i][c] for c in range(8)] for i in range(5)]
    S_zero = [[0.0 if not M[i][c] else S[i][c] for c in range(8)] for i in range(5)]
    s = _t(S_huge).requires_grad_(True)
    loss = obj(s, targets)
    loss.backward()
    assert loss.item() == pytest.approx(obj(_t(S_zero), targets).item(), rel=1e-12)
    assert loss.item() == pytest.approx(r1(logits(S, _scale(obj)), W, M), rel=1e-12)
    assert torch.isfinite(s.grad).all()
    assert (s.grad[~_t(M, torch.bool)] == 0).all()


@pytest.mark.parametrize("tile", [None, (1, None), (3, 2), (16, None)])
def test_masked_huge_entries_through_contrastive_loss(tile) -> None:
    # anchors = I and candidates = S^T make anchors @ candidates^T = S exactly, so any S reaches the tiled path
    S, W, M = random_problem(random.Random(13), 5, 7, soft=True)
    S_huge = [[1e30 if not M[i][c] else S[i][c] for c in range(7)] for i in range(5)]
    anchors, candidates = torch.eye(5, dtype=torch.float64), _t(S_huge).T
    obj = get("infonce", temperature=0.1)
    loss, (_, gc), _ = _run(obj, (anchors, candidates, Targets(pos=_t(W), valid=_t(M, torch.bool))), tile)
    assert loss.item() == pytest.approx(r1(logits(S, _scale(obj)), W, M), rel=1e-10)
    assert torch.isfinite(gc).all()
    assert (gc.T[~_t(M, torch.bool)] == 0).all()


def test_infonce_equals_cross_entropy_when_unmasked_one_hot() -> None:
    g = torch.Generator().manual_seed(0)
    S = torch.randn(7, 11, generator=g, dtype=torch.float64)
    t = torch.randint(0, 11, (7,), generator=g)
    obj = get("infonce", temperature=0.25)
    expected = F.cross_entropy(S * _scale(obj), t)
    torch.testing.assert_close(obj(S, Targets.from_index(t, num_cols=11)), expected)
    torch.testing.assert_close(obj(S, Targets(pos=F.one_hot(t, 11).to(torch.float64))), expected)


def test_infonce_drops_rows_without_positive_or_negative() -> None:
    S, W, M = random_problem(random.Random(11), 6, 6)  # row 0: no positive; row 1: every valid column positive
    rows = r1_rows(S, W, M)
    assert rows[0] is None and rows[1] is None and sum(r is not None for r in rows) == 4
    loss = get("infonce")(_t(S), Targets(pos=_t(W), valid=_t(M, torch.bool)))
    assert loss.item() == pytest.approx(sum(r for r in rows if r is not None) / 4, rel=1e-12)


@pytest.mark.parametrize("name", [*MATRIX_NAMES, "jointlh", "summarglh", "lsepair", "rand1lh"])
@pytest.mark.parametrize("tile", [None, (2, None), (2, 3)])
def test_empty_batch_gives_zero_loss_and_zero_gradients(name: str, tile) -> None:
    a, c = _embeddings(4, 4, 3, 0)
    obj = get(name)
    loss, (ga, gc), params = _run(obj, (a, c, Targets(pos=torch.zeros(4, 4, dtype=torch.float64))), tile)
    assert loss.item() == 0.0
    for g in [ga, gc, *params.values()]:
        assert torch.isfinite(g).all() and (g == 0).all()


# ------------------------------------------------------------------ CLIP
@pytest.mark.parametrize("multi", [False, True])
def test_clip_is_symmetric_average_of_r1(multi: bool) -> None:
    n = 6
    if multi:
        S, W, M = random_problem(random.Random(2), n, n, empty_rows=False)
    else:
        S = random_problem(random.Random(2), n, n)[0]
        W, M = build_targets(n, n, pos_lists=[[i] for i in range(n)])
    obj = get("clip")
    targets = Targets(pos=_t(W), valid=_t(M, torch.bool)) if multi else Targets.diagonal(n)
    L = logits(S, _scale(obj))
    expected = 0.5 * (r1(L, W, M) + r1(transpose(L), transpose(W), transpose(M)))
    assert obj(_t(S), targets).item() == pytest.approx(expected, rel=1e-12)
    assert abs(expected - r1(L, W, M)) > 1e-4  # the two directions differ


def test_clip_scale_initialised_learnable_and_clipped() -> None:
    obj = get("clip")
    assert _scale(obj) == pytest.approx(1 / 0.07, rel=1e-6)
    assert isinstance(obj.temperature.log_scale, torch.nn.Parameter)
    assert obj.temperature.max_scale == 100.0
    with pytest.raises(ValueError, match="below its floor"):
        get("clip", temperature=0.001)  # never silently raised to 0.01
    assert list(get("clip", learnable_temperature=False).parameters()) == []


def test_clip_gradient_reaches_log_scale_and_stays_live_at_the_cap() -> None:
    S = random_problem(random.Random(4), 5, 5)[0]
    W, M = build_targets(5, 5, pos_lists=[[i] for i in range(5)])

    def oracle(scale: float) -> float:
        L = logits(S, scale)
        return 0.5 * (r1(L, W, M) + r1(transpose(L), transpose(W), transpose(M)))

    obj = get("clip")
    obj(_t(S), Targets.diagonal(5)).backward()
    t, eps = float(obj.temperature.log_scale.detach()), 1e-5
    numeric = (oracle(math.exp(t + eps)) - oracle(math.exp(t - eps))) / (2 * eps)
    assert obj.temperature.log_scale.grad.item() == pytest.approx(numeric, rel=1e-4)

    with torch.no_grad():
        obj.temperature.log_scale.fill_(math.log(500.0))
    obj.zero_grad()
    loss = obj(_t(S), Targets.diagonal(5))
    loss.backward()
    assert _scale(obj) == 100.0
    assert loss.item() == pytest.approx(oracle(100.0), rel=1e-12)
    numeric = (oracle(100.0 * math.exp(eps)) - oracle(100.0 * math.exp(-eps))) / (2 * eps)
    assert obj.temperature.log_scale.grad.item() == pytest.approx(numeric, rel=1e-4)  # as at the cap, never 0


# ------------------------------------------------------------------ NT-Xent / SimCSE
def _ntxent_oracle(views: torch.Tensor, scale: float) -> float:
    z = to_lists(views[0]) + to_lists(views[1])
    n2 = len(z)
    S = matmul_t(z, z)
    rows = []
    for k in range(n2):
        partner = (k + n2 // 2) % n2
        denominator = [S[k][c] * scale for c in range(n2) if c != k]
        assert len(denominator) == n2 - 1
        rows.append(-S[k][partner] * scale + lse(denominator))
    return sum(rows) / n2  # mean over all 2n anchors


def _simcse_oracle(views: torch.Tensor, scale: float, alpha: float | None = None) -> float:
    h, hp = to_lists(views[0]), to_lists(views[1])
    hn = to_lists(views[2]) if alpha is not None else []
    Sp, Sn = matmul_t(h, hp), matmul_t(h, hn) if hn else []
    rows = []
    for i in range(len(h)):
        denominator = [Sp[i][j] * scale for j in range(len(h))]
        if alpha is not None:
            denominator += [Sn[i][j] * scale + (math.log(alpha) if j == i else 0.0) for j in range(len(h))]
        rows.append(-Sp[i][i] * scale + lse(denominator))
    return sum(rows) / len(rows)


@pytest.mark.parametrize("seed", [0, 1])
def test_ntxent_matches_oracle_and_is_view_symmetric(seed: int) -> None:
    views = _views(2, 5, 4, seed)
    obj = get("ntxent", temperature=0.2)
    loss = obj(views)
    assert loss.item() == pytest.approx(_ntxent_oracle(views, _scale(obj)), rel=1e-12)
    assert obj(views.flip(0)).item() == pytest.approx(loss.item(), rel=1e-12)
    assert get("ntxent").scale().item() == pytest.approx(10.0, rel=1e-6)  # default tau = 0.1
    W, M, _ = infonce.ntxent_targets(5).dense(torch.float64)
    assert (M.sum(-1) == 9).all() and not M.diagonal().any()  # 2n - 1 denominator terms, self excluded
    torch.testing.assert_close(W, torch.eye(10, dtype=torch.float64).roll(5, dims=1))


def test_simcse_uses_second_view_candidates_one_direction() -> None:
    views = _views(2, 6, 4, 3)
    obj = get("simcse", temperature=0.05)
    loss = obj(views)
    assert loss.item() == pytest.approx(_simcse_oracle(views, _scale(obj)), rel=1e-12)
    assert abs(obj(views.flip(0)).item() - loss.item()) > 1e-6  # not symmetrised
    ntxent = get("ntxent", temperature=0.05)
    assert abs(ntxent(views).item() - loss.item()) > 1e-3  # not NT-Xent
    assert get("simcse").scale().item() == pytest.approx(20.0, rel=1e-6)


@pytest.mark.parametrize("alpha", [1.0, 2.5, 0.3])
def test_simcse_sup_matches_oracle(alpha: float) -> None:
    views = _views(3, 5, 4, 4)
    obj = get("simcse_sup", temperature=0.05, hard_negative_weight=alpha)
    assert obj(views).item() == pytest.approx(_simcse_oracle(views, _scale(obj), alpha), rel=1e-12)


def test_simcse_sup_log_alpha_is_exact_in_float64() -> None:
    views = _views(3, 5, 4, 4)
    obj = get("simcse_sup", temperature=0.05, hard_negative_weight=2.5)
    assert obj(views).item() == pytest.approx(_simcse_oracle(views, _scale(obj), 2.5), rel=1e-12)


def test_simcse_sup_bias_only_at_own_hard_negative() -> None:
    n = 4
    W, M, B = infonce.simcse_targets(n, hard_negatives=True, hard_negative_weight=3.0).dense(torch.float64)
    expected_B = torch.zeros(n, 2 * n, dtype=torch.float64)
    expected_B[torch.arange(n), n + torch.arange(n)] = math.log(3.0)
    torch.testing.assert_close(B, expected_B)
    torch.testing.assert_close(W, torch.eye(n, 2 * n, dtype=torch.float64))
    assert M.all()
    views = _views(3, n, 4, 5)
    assert get("simcse_sup", hard_negative_weight=3.0)(views).item() > get("simcse_sup")(views).item()
    with pytest.raises(ValueError):
        get("simcse_sup", hard_negative_weight=0.0)(views)


# ------------------------------------------------------------------ tiled parity
def _compact_cases(A: int, C: int) -> list[tuple[str, Targets, tuple]]:
    """(label, compact Targets, independently built (W, M))."""
    rng = random.Random(A * 100 + C)
    lists = [[rng.randrange(C) for _ in range(rng.randint(0, 3))] for _ in range(A)]
    lists[0] = []
    width = max(len(x) for x in lists)
    padded = [x + [-1] * (width - len(x)) for x in lists]
    weights = [[rng.uniform(0.2, 2.0) for _ in range(width)] for _ in range(A)]
    row_ids = [rng.randrange(3) for _ in range(A)]
    col_ids = [rng.randrange(3) for _ in range(C)]
    col_ids[-1] = 99  # a column no row matches
    doc_ids = [rng.randrange(4) for _ in range(C)]
    qry_ids = [rng.randrange(4) for _ in range(A)]
    index = torch.tensor(padded)
    single = [[rng.randrange(C)] for _ in range(A)]
    single[1] = [-1]
    single_w = [[rng.uniform(0.2, 2.0)] for _ in range(A)]
    valid = [[rng.random() > 0.2 or c == single[i][0] for c in range(C)] for i in range(A)]
    return [
        (
            "from_index_weighted_valid",
            Targets(
                pos_index=torch.tensor(single),
                pos_weight=torch.tensor(single_w, dtype=torch.float64),
                valid=torch.tensor(valid),
            ),
            build_targets(A, C, pos_lists=single, pos_weights=single_w, valid=valid),
        ),
        ("from_lists", Targets.from_lists(index, C), build_targets(A, C, pos_lists=padded)),
        (
            "from_lists_weighted",
            Targets.from_lists(index, C, torch.tensor(weights, dtype=torch.float64)),
            build_targets(A, C, pos_lists=padded, pos_weights=weights),
        ),
        (
            "from_ids",
            Targets.from_ids(torch.tensor(row_ids), torch.tensor(col_ids)),
            build_targets(A, C, row_ids=row_ids, col_ids=col_ids),
        ),
        (
            "with_id_mask",
            Targets.from_lists(index, C).with_id_mask(torch.tensor(qry_ids), torch.tensor(doc_ids)),
            build_targets(A, C, pos_lists=padded, mask_row_ids=qry_ids, mask_col_ids=doc_ids),
        ),
        (
            "self_offset",
            Targets(pos_index=index, self_offset=1, num_cols=C),
            build_targets(A, C, pos_lists=padded, self_offset=1),
        ),
    ]


def test_compact_targets_are_built_as_the_oracle_says() -> None:
    for label, targets, (W, M) in _compact_cases(7, 9):
        dW, dM, _ = targets.dense(torch.float64)
        assert to_lists(dM) == M, label
        torch.testing.assert_close(dW, _t(W), msg=label)


@pytest.mark.parametrize("name", MATRIX_NAMES)
def test_matrix_objectives_tiled_parity_dense_targets(name: str) -> None:
    _, W, M = random_problem(random.Random(8), 9, 9, soft=True)
    a, c = _embeddings(9, 9, 5, 1)
    obj = get(name, temperature=0.5, learnable_temperature=True)
    targets = Targets(pos=_t(W), valid=_t(M, torch.bool))
    loss = _assert_parity(obj, (a, c, targets))
    L = logits(matmul_t(to_lists(a), to_lists(c)), _scale(obj))
    expected = r1(L, W, M)
    if name == "clip":
        expected = 0.5 * (expected + r1(transpose(L), transpose(W), transpose(M)))
    assert loss.item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("name", MATRIX_NAMES)
def test_matrix_objectives_tiled_parity_compact_targets(name: str) -> None:
    A, C = 7, 9 if name == "infonce" else 7
    a, c = _embeddings(A, C, 4, 2)
    obj = get(name, temperature=0.7, learnable_temperature=True)
    for label, targets, (W, M) in _compact_cases(A, C):
        loss = _assert_parity(obj, (a, c, targets), tiles=[(1, None), (3, 4), (7, None), (32, 2)])
        L = logits(matmul_t(to_lists(a), to_lists(c)), _scale(obj))
        expected = r1(L, W, M)
        if name == "clip":
            expected = 0.5 * (expected + r1(transpose(L), transpose(W), transpose(M)))
        assert loss.item() == pytest.approx(expected, rel=1e-10), label


def test_clip_float64_soft_weights_are_exact() -> None:
    n = 6
    S = random_problem(random.Random(12), n, n)[0]
    lists = [[i, (i + 1) % n] for i in range(n)]
    weights = [[0.1, 0.3] for _ in range(n)]
    W, M = build_targets(n, n, pos_lists=lists, pos_weights=weights)
    targets = Targets.from_lists(torch.tensor(lists), n, torch.tensor(weights, dtype=torch.float64))
    obj = get("clip", learnable_temperature=False, temperature=1.0)
    expected = 0.5 * (r1(S, W, M) + r1(transpose(S), transpose(W), transpose(M)))
    assert obj(_t(S), targets).item() == pytest.approx(expected, rel=1e-12)


def test_clip_tiled_parity_at_the_clip() -> None:
    a, c = _embeddings(6, 6, 4, 3)
    obj = get("clip")
    with torch.no_grad():
        obj.temperature.log_scale.fill_(math.log(250.0))
    _assert_parity(obj, (a, c, Targets.diagonal(6)), tiles=[(2, None), (4, 3)])
    assert obj.temperature.log_scale.grad.item() != 0.0  # live at the cap (left by the last, tiled, run)


@pytest.mark.parametrize(
    ("name", "V", "hparams"),
    [
        ("ntxent", 2, {}),
        ("simcse", 2, {}),
        ("simcse_sup", 3, {}),
        ("simcse_sup", 3, {"hard_negative_weight": 2.0}),
        ("ntxent", 2, {"learnable_temperature": True}),
    ],
)
def test_view_objectives_tiled_parity(name: str, V: int, hparams: dict) -> None:
    views = _views(V, 7, 4, 6)
    obj = get(name, temperature=0.3, **hparams)
    _assert_parity(obj, (views,))
