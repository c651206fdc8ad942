"""JointLH, SumMargLH, LSEPair, Rand1LH (objectives.md section 2) against float64 loop oracles."""

from __future__ import annotations

import math
import random

import pytest
import torch
from oracles import (
    build_targets,
    logits,
    matmul_t,
    positives,
    r1,
    r1_rows,
    r2,
    r2_rows,
    r4,
    r4_rows,
    random_problem,
    to_lists,
)

from contrastkit import ContrastiveLoss
from contrastkit.objectives import get, multipos
from contrastkit.objectives.multipos import draw_one_positive
from contrastkit.objectives.targets import Targets

NAMES = ["jointlh", "summarglh", "lsepair", "rand1lh"]
TILES = [(1, None), (3, None), (7, 2), (7, None), (64, None), (3, 5)]


def _t(x, dtype=torch.float64) -> torch.Tensor:
    return torch.tensor(x, dtype=dtype)


def _dense(W, M) -> Targets:
    return Targets(pos=_t(W), valid=_t(M, torch.bool))


def _scale(obj) -> float:
    return float(obj.scale().detach())


def _reseed(obj, seed: int = 0) -> None:
    if isinstance(obj, multipos.Rand1LH):
        obj.generator.manual_seed(seed)


def _drawn(targets: Targets, seed: int) -> tuple[list[list[float]], list[list[bool]]]:
    """Dense (W, M) of Rand1LH's draw with ``seed`` (the module seeds a fresh generator the same way)."""
    W, M, _ = draw_one_positive(targets, torch.Generator().manual_seed(seed)).dense(torch.float64)
    return to_lists(W), to_lists(M)


def _oracle(name: str, L, W, M, **hp) -> float:
    if name == "jointlh":
        return r1(L, W, M, normalize=False, **hp)
    if name == "summarglh":
        return r2(L, W, M)
    if name == "lsepair":
        return r4(L, W, M, **hp)
    raise ValueError(name)


# ------------------------------------------------------------------ the spec's hand example
HAND_S = [[2.0, 1.0, 0.0], [0.0, 1.0, 3.0]]
HAND_W = [[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
HAND_M = [[True] * 3, [True] * 3]


@pytest.mark.parametrize(("name", "value"), [("lsepair", 0.288726), ("jointlh", 0.992529), ("summarglh", 0.132095)])
def test_hand_example(name: str, value: float) -> None:
    loss = get(name)(_t(HAND_S), _dense(HAND_W, HAND_M)).item()
    assert loss == pytest.approx(value, abs=1e-6)
    assert loss == pytest.approx(_oracle(name, HAND_S, HAND_W, HAND_M), rel=1e-12)


def test_hand_example_closed_forms() -> None:
    e = math.exp
    lsepair = (math.log(1 + e(-1) + e(-2)) + math.log(1 + e(-2) + e(-3))) / 2
    assert r4(HAND_S, HAND_W, HAND_M) == pytest.approx(lsepair, rel=1e-14)
    joint = (2 * math.log(e(2) + e(1) + 1) - 3 + math.log(1 + e(1) + e(3)) - 3) / 2
    assert r1(HAND_S, HAND_W, HAND_M, normalize=False) == pytest.approx(joint, rel=1e-14)


# ------------------------------------------------------------------ oracles on random problems
@pytest.mark.parametrize("per_positive", [False, True])
@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_jointlh_matches_unnormalised_r1(seed: int, soft: bool, per_positive: bool) -> None:
    S, W, M = random_problem(random.Random(seed), 6, 10, soft=soft)
    obj = get("jointlh", temperature=0.4, per_positive=per_positive)
    expected = r1(logits(S, _scale(obj)), W, M, normalize=False, per_positive=per_positive)
    assert obj(_t(S), _dense(W, M)).item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_summarglh_matches_r2(seed: int) -> None:
    S, W, M = random_problem(random.Random(seed), 6, 10)
    obj = get("summarglh", temperature=0.4)
    rows = r2_rows(logits(S, _scale(obj)), W, M)
    assert rows[0] is None
    assert obj(_t(S), _dense(W, M)).item() == pytest.approx(r2(logits(S, _scale(obj)), W, M), rel=1e-12)


@pytest.mark.parametrize("per_positive", [False, True])
@pytest.mark.parametrize("pos", ["all", "min", "max"])
@pytest.mark.parametrize("neg", ["all", "max"])
def test_lsepair_selectors_match_r4(neg: str, pos: str, per_positive: bool) -> None:
    S, W, M = random_problem(random.Random(4), 7, 10, max_pos=4)
    obj = get("lsepair", temperature=0.5, neg=neg, pos=pos, per_positive=per_positive)
    L = logits(S, _scale(obj))
    rows = r4_rows(L, W, M, neg=neg, pos=pos, per_positive=per_positive)
    assert rows[0] is None and rows[1] is None  # no positive; no negative
    s = _t(S).requires_grad_(True)
    loss = obj(s, _dense(W, M))
    loss.backward()
    assert loss.item() == pytest.approx(r4(L, W, M, neg=neg, pos=pos, per_positive=per_positive), rel=1e-12)
    assert torch.isfinite(s.grad).all()
    assert obj.row_separable == (neg == "all" and pos == "all")
    if not obj.row_separable:
        with pytest.raises(ValueError, match="row-separable"):
            ContrastiveLoss("lsepair", neg=neg, pos=pos, tile_size=2)


def test_lsepair_selector_orderings() -> None:
    S, W, M = random_problem(random.Random(5), 8, 10, max_pos=4, empty_rows=False)

    def value(**hp: str) -> float:
        return get("lsepair", **hp)(_t(S), _dense(W, M)).item()

    assert value(neg="max") < value()
    assert value(pos="max") < value(pos="min") < value()


# ------------------------------------------------------------------ properties
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_positive_per_row_all_equal_infonce(seed: int) -> None:
    # one positive and at least one negative in every row (LSEPair drops rows without a negative)
    S, W, M = random_problem(random.Random(seed), 6, 9, max_pos=1, p_invalid=0.1, empty_rows=False)
    targets = _dense(W, M)
    expected = get("infonce", temperature=0.5)(_t(S), targets).item()
    assert expected == pytest.approx(r1(logits(S, 2.0), W, M), rel=1e-6)
    for name in NAMES:
        assert get(name, temperature=0.5)(_t(S), targets).item() == pytest.approx(expected, rel=1e-12), name


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_summarglh_below_jointlh_over_m(seed: int) -> None:
    rng, m = random.Random(seed), 3
    S, _, M = random_problem(rng, 6, 12, p_invalid=0.0)
    W = [[0.0] * 12 for _ in range(6)]
    for i in range(6):
        for c in rng.sample(range(12), m):
            W[i][c] = 1.0
    targets = _dense(W, M)
    joint = get("jointlh")(_t(S), targets).item()
    marg = get("summarglh")(_t(S), targets).item()
    assert marg <= joint / m
    assert get("jointlh", per_positive=True)(_t(S), targets).item() == pytest.approx(joint / m, rel=1e-12)
    for rm, rj in zip(r2_rows(S, W, M), r1_rows(S, W, M, normalize=False), strict=True):
        assert rm <= rj / m + 1e-12


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_lsepair_row_bounds_best_single_positive_infonce(seed: int) -> None:
    S, W, M = random_problem(random.Random(seed), 6, 9, max_pos=4)
    lsepair, infonce = get("lsepair"), get("infonce")
    checked = 0
    for i in range(6):
        P = positives(W[i], M[i])
        has_neg = any(M[i][c] and W[i][c] == 0 for c in range(9))
        if not P or not has_neg:
            continue
        row = lsepair(_t(S[i : i + 1]), _dense(W[i : i + 1], M[i : i + 1])).item()
        singles = []
        for p in P:
            Wp = [[1.0 if c == p else 0.0 for c in range(9)]]
            Mp = [[M[i][c] and (c == p or c not in P) for c in range(9)]]
            singles.append(infonce(_t(S[i : i + 1]), _dense(Wp, Mp)).item())
        assert row >= max(singles) - 1e-12
        checked += 1
    assert checked >= 3


@pytest.mark.parametrize("seed", [0, 1])
def test_lsepair_above_rand1lh_for_any_draw(seed: int) -> None:
    S, W, M = random_problem(random.Random(seed), 8, 10, max_pos=4)
    targets = _dense(W, M)
    bound = get("lsepair", temperature=0.3)(_t(S), targets).item()
    for draw in range(10):
        assert get("rand1lh", temperature=0.3, seed=draw)(_t(S), targets).item() <= bound


# ------------------------------------------------------------------ Rand1LH
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rand1lh_masks_undrawn_positives(seed: int) -> None:
    S, W, M = random_problem(random.Random(seed), 6, 9, max_pos=4)
    targets = _dense(W, M)
    Wd, Md = _drawn(targets, seed)
    for i in range(6):
        P = positives(W[i], M[i])
        Pd = positives(Wd[i], Md[i])
        assert len(Pd) == (1 if P else 0) and set(Pd) <= set(P)
        for c in range(9):  # the undrawn positives are masked, everything else keeps its validity
            assert Md[i][c] == (M[i][c] and (c in Pd or c not in P))
    obj = get("rand1lh", temperature=0.5, seed=seed)
    loss = obj(_t(S), targets).item()
    L = logits(S, _scale(obj))
    assert loss == pytest.approx(r1(L, Wd, Md), rel=1e-12)
    negated = [[Md[i][c] or M[i][c] for c in range(9)] for i in range(6)]  # undrawn positives as negatives
    assert abs(loss - r1(L, Wd, negated)) > 1e-3


def test_rand1lh_deterministic_by_seed() -> None:
    S, W, M = random_problem(random.Random(9), 6, 9, max_pos=4)
    targets = _dense(W, M)
    first = get("rand1lh", seed=3)(_t(S), targets)
    assert get("rand1lh", seed=3)(_t(S), targets).item() == first.item()
    values = {get("rand1lh", seed=s)(_t(S), targets).item() for s in range(8)}
    assert len(values) > 1


def test_draw_one_positive_covers_own_positives_only() -> None:
    _, W, M = random_problem(random.Random(1), 5, 8, max_pos=4)
    targets = _dense(W, M)
    seen: list[set[int]] = [set() for _ in range(5)]
    g = torch.Generator().manual_seed(0)
    for _ in range(60):
        index = draw_one_positive(targets, g, block_rows=2).pos_index[:, 0].tolist()
        for i, c in enumerate(index):
            if c == -1:
                assert not positives(W[i], M[i])
            else:
                seen[i].add(c)
    for i in range(5):
        assert seen[i] == set(positives(W[i], M[i]))  # every positive is drawn at some point


def test_draw_one_positive_keeps_compact_masks() -> None:
    A = C = 7
    lists = [[-1, -1, -1], [1, 2, 3], [0, 4, -1], [5, -1, -1], [2, 6, 0], [1, 3, -1], [6, -1, -1]]
    ids_r, ids_c = [0, 1, 1, 2, 0, 3, 2], [1, 0, 2, 2, 0, 3, 1]
    targets = Targets(pos_index=torch.tensor(lists), self_offset=1, num_cols=C).with_id_mask(
        torch.tensor(ids_r), torch.tensor(ids_c)
    )
    W, M = build_targets(A, C, pos_lists=lists, self_offset=1, mask_row_ids=ids_r, mask_col_ids=ids_c)
    Wd, Md = _drawn(targets, 4)
    for i in range(A):
        P, Pd = positives(W[i], M[i]), positives(Wd[i], Md[i])
        assert len(Pd) == (1 if P else 0) and set(Pd) <= set(P)
        assert Md[i] == [M[i][c] and (c in Pd or c not in P) for c in range(C)]


# ------------------------------------------------------------------ tiled parity
def _run(obj, a, c, targets, tile):
    a = a.detach().clone().requires_grad_(True)
    c = c.detach().clone().requires_grad_(True)
    obj.zero_grad(set_to_none=True)
    _reseed(obj)
    if tile is None:
        loss = obj(a @ c.T, targets)
    else:
        loss = ContrastiveLoss(obj, tile_size=tile[0], tile_cols=tile[1], similarity="dot")(a, c, targets)
    loss.backward()
    return loss.detach(), a.grad, c.grad, {n: p.grad.clone() for n, p in obj.named_parameters()}


def _assert_parity(obj, a, c, targets, tiles=TILES) -> float:
    dense = _run(obj, a, c, targets, None)
    for g in [*dense[1:3], *dense[3].values()]:
        assert torch.isfinite(g).all()
    for tile in tiles:
        loss, ga, gc, params = _run(obj, a, c, targets, tile)
        torch.testing.assert_close(loss, dense[0], rtol=1e-10, atol=1e-12, msg=f"loss, tile={tile}")
        torch.testing.assert_close(ga, dense[1], rtol=1e-9, atol=1e-12, msg=f"anchor grad, tile={tile}")
        torch.testing.assert_close(gc, dense[2], rtol=1e-9, atol=1e-12, msg=f"candidate grad, tile={tile}")
        assert params.keys() == dense[3].keys()
        for name, g in params.items():
            torch.testing.assert_close(g, dense[3][name], rtol=1e-5, atol=1e-7, msg=f"{name}, tile={tile}")
    return dense[0].item()


def _embeddings(A: int, C: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(A, d, generator=g, dtype=torch.float64), torch.randn(C, d, generator=g, dtype=torch.float64)


CONFIGS = [
    ("jointlh", {}),
    ("jointlh", {"per_positive": True}),
    ("summarglh", {}),
    ("lsepair", {}),
    ("lsepair", {"per_positive": True}),
    ("rand1lh", {}),
]


def _matrix_oracle(name: str, hp: dict, L, targets: Targets, W, M) -> float:
    if name == "rand1lh":
        Wd, Md = _drawn(targets, 0)
        return r1(L, Wd, Md)
    return _oracle(name, L, W, M, **hp)


@pytest.mark.parametrize(("name", "hp"), CONFIGS)
def test_tiled_parity_dense_targets(name: str, hp: dict) -> None:
    _, W, M = random_problem(random.Random(3), 9, 11, max_pos=4)
    a, c = _embeddings(9, 11, 5, 0)
    obj = get(name, temperature=0.5, learnable_temperature=True, **hp)
    targets = _dense(W, M)
    loss = _assert_parity(obj, a, c, targets)
    L = logits(matmul_t(to_lists(a), to_lists(c)), _scale(obj))
    assert loss == pytest.approx(_matrix_oracle(name, hp, L, targets, W, M), rel=1e-10)


@pytest.mark.parametrize(("name", "hp"), CONFIGS)
def test_tiled_parity_compact_targets(name: str, hp: dict) -> None:
    A, C = 7, 9
    rng = random.Random(17)
    lists = [[rng.randrange(C) for _ in range(rng.randint(1, 3))] for _ in range(A)]
    lists[0] = []
    lists = [x + [-1] * (3 - len(x)) for x in lists]
    row_ids, col_ids = [rng.randrange(3) for _ in range(A)], [rng.randrange(3) for _ in range(C)]
    q_ids, d_ids = [rng.randrange(4) for _ in range(A)], [rng.randrange(4) for _ in range(C)]
    cases = [
        (Targets.from_lists(torch.tensor(lists), C), build_targets(A, C, pos_lists=lists)),
        (
            Targets.from_ids(torch.tensor(row_ids), torch.tensor(col_ids)),
            build_targets(A, C, row_ids=row_ids, col_ids=col_ids),
        ),
        (
            Targets.from_lists(torch.tensor(lists), C).with_id_mask(torch.tensor(q_ids), torch.tensor(d_ids)),
            build_targets(A, C, pos_lists=lists, mask_row_ids=q_ids, mask_col_ids=d_ids),
        ),
        (
            Targets(pos_index=torch.tensor(lists), self_offset=2, num_cols=C),
            build_targets(A, C, pos_lists=lists, self_offset=2),
        ),
    ]
    a, c = _embeddings(A, C, 4, 1)
    obj = get(name, temperature=0.7, learnable_temperature=True, **hp)
    L = logits(matmul_t(to_lists(a), to_lists(c)), _scale(obj))
    for targets, (W, M) in cases:
        loss = _assert_parity(obj, a, c, targets, tiles=[(1, None), (3, 4), (7, None), (32, 2)])
        assert loss == pytest.approx(_matrix_oracle(name, hp, L, targets, W, M), rel=1e-10)
