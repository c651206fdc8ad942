"""SigLIP (objectives.md section 15) against a float64 loop oracle of R5."""

from __future__ import annotations

import math
import random

import pytest
import torch
import torch.nn.functional as F
from oracles import build_targets, logits, matmul_t, numeric_grad, r5, r5_rows, random_problem, to_lists

from contrastkit import ContrastiveLoss
from contrastkit.objectives import get
from contrastkit.objectives.targets import Targets

TILES = [(1, None), (3, None), (7, 2), (7, None), (64, None), (3, 5)]


def _t(x, dtype=torch.float64) -> torch.Tensor:
    return torch.tensor(x, dtype=dtype)


def _tb(obj) -> tuple[float, float]:
    return float(obj.scale().detach()), float(obj.bias.detach())


def test_siglip_initialisation() -> None:
    obj = get("siglip")
    assert obj.scale().item() == pytest.approx(10.0, rel=1e-6)
    assert obj.bias.item() == -10.0
    assert dict(obj.named_parameters()).keys() == {"bias", "temperature.log_scale"}
    frozen = get("siglip", learnable_temperature=False)
    assert list(frozen.parameters()) == []
    assert frozen.scale().item() == pytest.approx(10.0, rel=1e-6) and frozen.bias.item() == -10.0


@pytest.mark.parametrize("seed", [0, 1])
def test_siglip_equals_bce_sum_over_batch(seed: int) -> None:
    B = 6
    g = torch.Generator().manual_seed(seed)
    S = torch.randn(B, B, generator=g, dtype=torch.float64).clamp(-1, 1)
    obj = get("siglip")
    t, b = _tb(obj)
    loss = obj(S, Targets.diagonal(B))
    eye = torch.eye(B, dtype=torch.float64)
    expected = F.binary_cross_entropy_with_logits(t * S + b, eye, reduction="sum") / B
    torch.testing.assert_close(loss, expected, rtol=1e-12, atol=0)
    mean_over_pairs = F.binary_cross_entropy_with_logits(t * S + b, eye, reduction="mean")
    assert abs(loss.item() - mean_over_pairs.item()) > 1e-3  # sum / |B|, not the mean over pairs
    z = [[1 if i == j else -1 for j in range(B)] for i in range(B)]
    Sl = S.tolist()
    pairwise = -sum(math.log(1 / (1 + math.exp(-z[i][j] * (t * Sl[i][j] + b)))) for i in range(B) for j in range(B))
    assert loss.item() == pytest.approx(pairwise / B, rel=1e-12)  # the paper's log-sigmoid form


@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_siglip_matches_r5_oracle_with_masks(seed: int, soft: bool) -> None:
    S, W, M = random_problem(random.Random(seed), 5, 8, soft=soft)
    if soft:  # soft labels in [0, 1]
        W = [[min(w, 1.0) for w in row] for row in W]
    obj = get("siglip", temperature=0.5, bias=-1.5)
    t, b = _tb(obj)
    s = _t(S).requires_grad_(True)
    loss = obj(s, Targets(pos=_t(W), valid=_t(M, torch.bool)))
    loss.backward()
    rows = r5_rows(logits(S, t, b), W, M)
    assert loss.item() == pytest.approx(sum(rows) / 5, rel=1e-12)  # every row counts, even row 0 (no positive)
    numeric = numeric_grad(lambda X: r5(logits(X, t, b), W, M), S)
    torch.testing.assert_close(s.grad, _t(numeric), rtol=1e-6, atol=1e-8)


def test_siglip_gradients_reach_scale_and_bias() -> None:
    S, W, M = random_problem(random.Random(3), 4, 6)
    obj = get("siglip", temperature=0.4, bias=-2.0)
    obj(_t(S), Targets(pos=_t(W), valid=_t(M, torch.bool))).backward()
    log_t, b, eps = float(obj.temperature.log_scale.detach()), float(obj.bias.detach()), 1e-6

    def f(lt: float, bb: float) -> float:
        return r5(logits(S, math.exp(lt), bb), W, M)

    d_log_t = (f(log_t + eps, b) - f(log_t - eps, b)) / (2 * eps)
    d_b = (f(log_t, b + eps) - f(log_t, b - eps)) / (2 * eps)
    assert obj.temperature.log_scale.grad.item() == pytest.approx(d_log_t, rel=1e-4)
    assert obj.bias.grad.item() == pytest.approx(d_b, rel=1e-4)
    assert obj.bias.grad.item() != 0.0 and obj.temperature.log_scale.grad.item() != 0.0


def test_siglip_is_batch_decomposable() -> None:
    S, W, M = random_problem(random.Random(4), 7, 7)
    obj = get("siglip")
    full = obj(_t(S), Targets(pos=_t(W), valid=_t(M, torch.bool))).item() * 7
    parts = sum(
        obj(_t(S[r : r + 3]), Targets(pos=_t(W[r : r + 3]), valid=_t(M[r : r + 3], torch.bool))).item()
        * len(S[r : r + 3])
        for r in range(0, 7, 3)
    )
    assert full == pytest.approx(parts, rel=1e-12)


def test_siglip_all_invalid_gives_zero() -> None:
    s = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    obj = get("siglip")
    loss = obj(s, Targets(valid=torch.zeros(3, 4, dtype=torch.bool), num_cols=4))
    loss.backward()
    assert loss.item() == 0.0
    assert (s.grad == 0).all() and (obj.bias.grad == 0).all()


def test_siglip_rows_without_positives_are_negatives_only() -> None:
    # unlike the softmax objectives, a batch with no positive is not empty: every pair is a negative
    S = random_problem(random.Random(6), 4, 5)[0]
    obj = get("siglip")
    t, b = _tb(obj)
    s = _t(S).requires_grad_(True)
    loss = obj(s, Targets(pos=torch.zeros(4, 5, dtype=torch.float64)))
    loss.backward()
    W, M = build_targets(4, 5)
    assert loss.item() == pytest.approx(r5(logits(S, t, b), W, M), rel=1e-12)
    assert torch.isfinite(s.grad).all()


# ------------------------------------------------------------------ tiled parity
def _run(obj, a, c, targets, tile):
    a = a.detach().clone().requires_grad_(True)
    c = c.detach().clone().requires_grad_(True)
    obj.zero_grad(set_to_none=True)
    if tile is None:
        loss = obj(a @ c.T, targets)
    else:
        loss = ContrastiveLoss(obj, tile_size=tile[0], tile_cols=tile[1], similarity="dot")(a, c, targets)
    loss.backward()
    return loss.detach(), a.grad, c.grad, {n: p.grad.clone() for n, p in obj.named_parameters()}


def _assert_parity(obj, a, c, targets, tiles=TILES) -> float:
    dense = _run(obj, a, c, targets, None)
    assert dense[3].keys() == {"bias", "temperature.log_scale"}
    for tile in tiles:
        loss, ga, gc, params = _run(obj, a, c, targets, tile)
        torch.testing.assert_close(loss, dense[0], rtol=1e-10, atol=1e-12, msg=f"loss, tile={tile}")
        torch.testing.assert_close(ga, dense[1], rtol=1e-9, atol=1e-12, msg=f"anchor grad, tile={tile}")
        torch.testing.assert_close(gc, dense[2], rtol=1e-9, atol=1e-12, msg=f"candidate grad, tile={tile}")
        for name, g in params.items():
            torch.testing.assert_close(g, dense[3][name], rtol=1e-5, atol=1e-7, msg=f"{name}, tile={tile}")
    return dense[0].item()


def _embeddings(A: int, C: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = F.normalize(torch.randn(A, d, generator=g, dtype=torch.float64), dim=-1)
    return a, F.normalize(torch.randn(C, d, generator=g, dtype=torch.float64), dim=-1)


def test_siglip_tiled_parity_dense_targets() -> None:
    _, W, M = random_problem(random.Random(2), 9, 11)
    a, c = _embeddings(9, 11, 5, 0)
    obj = get("siglip", temperature=0.2, bias=-3.0)
    loss = _assert_parity(obj, a, c, Targets(pos=_t(W), valid=_t(M, torch.bool)))
    t, b = _tb(obj)
    assert loss == pytest.approx(r5(logits(matmul_t(to_lists(a), to_lists(c)), t, b), W, M), rel=1e-10)


def test_siglip_tiled_parity_compact_targets() -> None:
    A, C = 7, 7
    lists = [[-1, -1], [2, -1], [0, 3], [3, -1], [4, 5], [6, -1], [1, 5]]
    ids = [0, 1, 1, 2, 0, 3, 2]
    cases = [
        (Targets.diagonal(A), build_targets(A, C, pos_lists=[[i] for i in range(A)])),
        (Targets.from_lists(torch.tensor(lists), C), build_targets(A, C, pos_lists=lists)),
        (
            Targets.from_ids(torch.tensor(ids), torch.tensor(ids), exclude_self=True),
            build_targets(A, C, row_ids=ids, col_ids=ids, self_offset=0),
        ),
        (
            Targets.diagonal(A).with_id_mask(torch.tensor(ids), torch.tensor(ids)),
            build_targets(A, C, pos_lists=[[i] for i in range(A)], mask_row_ids=ids, mask_col_ids=ids),
        ),
    ]
    a, c = _embeddings(A, C, 4, 1)
    obj = get("siglip")
    t, b = _tb(obj)
    L = logits(matmul_t(to_lists(a), to_lists(c)), t, b)
    for targets, (W, M) in cases:
        loss = _assert_parity(obj, a, c, targets, tiles=[(1, None), (3, 4), (32, 2)])
        assert loss == pytest.approx(r5(L, W, M), rel=1e-10)
