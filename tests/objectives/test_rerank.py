"""Reranker objectives (rerank_bce, sft, ranknet, url, listwise infonce on groups) against float64 loop oracles."""

from __future__ import annotations

import math
import random

import pytest
import torch
from oracles import bce_with_logits, lse, mean_kept, negatives, positives, random_problem, softplus

from contrastkit import ContrastiveLoss
from contrastkit.objectives import get
from contrastkit.objectives.rerank import group_targets
from contrastkit.objectives.targets import Targets
from contrastkit.scale.gradcache import GradCache


# ---------------------------------------------------------------- loop oracles (no library code)
def mean_bce_rows(L, W, M):
    out = []
    for Li, Wi, Mi in zip(L, W, M):
        cols = [c for c in range(len(Li)) if Mi[c]]
        out.append(sum(bce_with_logits(Li[c], Wi[c]) for c in cols) / len(cols) if cols else None)
    return out


def ranknet_rows(L, W, M):
    out = []
    for Li, Wi, Mi in zip(L, W, M):
        pairs = [(p, q) for p in positives(Wi, Mi) for q in negatives(Wi, Mi)]
        out.append(sum(softplus(Li[q] - Li[p]) for p, q in pairs) / len(pairs) if pairs else None)
    return out


def two_way_ce_rows(yes, no, W, M):
    """SFT as the paper writes it: -log p(label | {yes, no}) per pair, mean over the group."""
    out = []
    for yi, ni, Wi, Mi in zip(yes, no, W, M):
        cols = [c for c in range(len(yi)) if Mi[c]]
        terms = []
        for c in cols:
            log_norm = lse([yi[c], ni[c]])
            terms.append(-(Wi[c] * (yi[c] - log_norm) + (1 - Wi[c]) * (ni[c] - log_norm)))
        out.append(sum(terms) / len(cols) if cols else None)
    return out


def url_grad(yes, no, W, M, weight, direction):
    """d loss / d (yes, no) of the unified loss, from the weight x direction table, with loops."""
    A, C = len(yes), len(yes[0])
    gy = [[0.0] * C for _ in range(A)]
    gn = [[0.0] * C for _ in range(A)]
    kept = []
    for i in range(A):
        cols = [c for c in range(C) if M[i][c]]
        P = positives(W[i], M[i])
        keep = (bool(P) and len(P) < len(cols)) if weight == "cl" else bool(cols)  # InfoNCE: a positive and a negative
        kept.append(keep)
        if not keep:
            continue
        for c in cols:
            if weight == "cl":
                soft = math.exp(yes[i][c] - lse([yes[i][j] for j in cols]))
                g = soft - W[i][c] / sum(W[i][j] for j in P)
            else:
                g = (1 / (1 + math.exp(-(yes[i][c] - no[i][c]))) - W[i][c]) / len(cols)
            gy[i][c] = g
            gn[i][c] = -g if direction == "sft" else 0.0
    n = sum(kept)
    return [[v / n for v in r] for r in gy], [[v / n for v in r] for r in gn]


def _t(x):
    return torch.tensor(x, dtype=torch.float64)


def problem(seed, A=5, C=7):
    S, W, M = random_problem(random.Random(seed), A, C, max_pos=2)
    return _t(S), Targets(pos=_t(W), valid=torch.tensor(M)), (S, W, M)


# ---------------------------------------------------------------- tests
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name,oracle", [("rerank_bce", mean_bce_rows), ("ranknet", ranknet_rows)])
def test_pointwise_and_pairwise_match_loop_oracles(seed, name, oracle):
    S, targets, (Sl, W, M) = problem(seed)
    tau = 0.7
    loss = get(name, temperature=tau)(S, targets)
    L = [[s / tau for s in row] for row in Sl]
    assert loss.item() == pytest.approx(mean_kept(oracle(L, W, M)), rel=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_sft_is_the_two_way_yes_no_cross_entropy(seed):
    g = torch.Generator().manual_seed(seed)
    yes, no = torch.randn(4, 6, generator=g, dtype=torch.float64), torch.randn(4, 6, generator=g, dtype=torch.float64)
    targets = group_targets(torch.tensor([1, 2, 0, 1]), 6, sizes=torch.tensor([6, 4, 5, 2]))
    W, M, _ = targets.dense(torch.float64)
    expected = mean_kept(two_way_ce_rows(yes.tolist(), no.tolist(), W.tolist(), M.tolist()))
    assert get("sft")(yes - no, targets).item() == pytest.approx(expected, rel=1e-12)


def test_group_targets_layout():
    t = group_targets(torch.tensor([1, 2]), 4, sizes=torch.tensor([3, 4]))
    W, M, _ = t.dense()
    assert W.tolist() == [[1, 0, 0, 0], [1, 1, 0, 0]]
    assert M.tolist() == [[True, True, True, False], [True] * 4]
    with pytest.raises(ValueError, match="num_positives <= sizes"):
        group_targets(torch.tensor([3]), 4, sizes=torch.tensor([2]))


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("weight", ["cl", "sft"])
@pytest.mark.parametrize("direction", ["cl", "sft"])
def test_url_gradient_is_weight_times_direction(seed, weight, direction):
    S, targets, (_, W, M) = problem(seed)
    g = torch.Generator().manual_seed(seed + 10)
    Y = torch.randn(*S.shape, 2, generator=g, dtype=torch.float64).requires_grad_()
    get("url", weight=weight, direction=direction)(Y, targets).backward()
    gy, gn = url_grad(Y[..., 0].tolist(), Y[..., 1].tolist(), W, M, weight, direction)
    torch.testing.assert_close(Y.grad[..., 0], _t(gy), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(Y.grad[..., 1], _t(gn), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("scheme,equal", [("cl", "infonce"), ("sft", "sft")])
def test_url_matched_forms_equal_their_objectives(scheme, equal):
    S, targets, _ = problem(3)
    g = torch.Generator().manual_seed(4)
    Y = torch.randn(*S.shape, 2, generator=g, dtype=torch.float64)
    score = Y[..., 0] if equal == "infonce" else Y[..., 0] - Y[..., 1]
    Y1, Y2 = Y.clone().requires_grad_(), Y.clone().requires_grad_()
    url = get("url", weight=scheme, direction=scheme, temperature=0.5)(Y1, targets)
    ref_score = Y2[..., 0] if equal == "infonce" else Y2[..., 0] - Y2[..., 1]
    ref = get(equal, temperature=0.5)(ref_score, targets)
    assert url.item() == pytest.approx(ref.item(), rel=1e-12)
    url.backward()
    ref.backward()
    torch.testing.assert_close(Y1.grad, Y2.grad, rtol=1e-10, atol=1e-14)
    assert score.shape == S.shape


def test_url_rejects_bad_inputs():
    with pytest.raises(ValueError, match="weight must be"):
        get("url", weight="mse")
    with pytest.raises(ValueError, match="expected Y of shape"):
        get("url")(torch.randn(2, 3), group_targets(torch.ones(2, dtype=torch.long), 3))


@pytest.mark.parametrize("name", ["rerank_bce", "sft"])
@pytest.mark.parametrize("tile", [2, 5])
def test_pointwise_bce_tiles_exactly(name, tile):
    """A bi-encoder can use the pointwise losses with the tiled engine: value and gradients equal the dense form."""
    g = torch.Generator().manual_seed(0)
    q = torch.randn(6, 8, generator=g, dtype=torch.float64, requires_grad=True)
    d = torch.randn(9, 8, generator=g, dtype=torch.float64, requires_grad=True)
    targets = Targets.from_lists(torch.tensor([[0, 1], [2, -1], [3, 4], [5, -1], [6, -1], [7, 8]]), num_cols=9)
    dense = ContrastiveLoss(name, similarity="dot")(q, d, targets)
    (gq, gd) = torch.autograd.grad(dense, (q, d))
    tiled = ContrastiveLoss(name, similarity="dot", tile_size=tile)(q, d, targets)
    (tq, td) = torch.autograd.grad(tiled, (q, d))
    assert tiled.item() == pytest.approx(dense.item(), rel=1e-12)
    torch.testing.assert_close((tq, td), (gq, gd), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["infonce", "rerank_bce", "lsepair"])
def test_gradcache_over_pair_scores_equals_the_full_step(name):
    """A scorer of pairs is an encoder of (rows, 1) outputs: GradCache over chunks of pairs gives the same grads."""
    torch.manual_seed(0)
    scorer = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)).double()
    n, k = 4, 5
    pairs = {"x": torch.randn(n * k, 6, dtype=torch.float64)}
    targets = group_targets(torch.tensor([1, 2, 1, 1]), k)
    objective = get(name)

    def loss_fn(outputs):
        return objective(outputs[0].reshape(n, k), targets)

    full = loss_fn([scorer(pairs["x"])])
    full.backward()
    expected = [p.grad.clone() for p in scorer.parameters()]
    scorer.zero_grad()
    cached = GradCache(chunk_size=3).loss(lambda f: scorer(f["x"]), [pairs], loss_fn)
    assert cached.item() == pytest.approx(full.item(), rel=1e-12)
    for got, want in zip((p.grad for p in scorer.parameters()), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_listwise_infonce_on_a_group_is_the_softmax_over_its_documents():
    S = _t([[2.0, 0.5, -1.0, 0.3], [0.1, 0.2, 0.9, -0.4]])
    targets = group_targets(torch.tensor([1, 2]), 4, sizes=torch.tensor([4, 3]))
    rows = [-(2.0 - lse([2.0, 0.5, -1.0, 0.3])), -0.5 * ((0.1 + 0.2) - 2 * lse([0.1, 0.2, 0.9]))]
    assert get("infonce")(S, targets).item() == pytest.approx(sum(rows) / 2, rel=1e-12)
