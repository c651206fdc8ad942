"""UWE many-to-many InfoNCE: both normalisations vs loop oracles; graph neighbours are never negatives."""

import math

import pytest
import torch

from contrastkit import ContrastiveLoss
from contrastkit.objectives import Status, Targets, get, uwe  # noqa: F401 - uwe registers the objective
from contrastkit.objectives.uwe import batch_adjacency


def _lse(values):
    top = max(values)
    return top + math.log(sum(math.exp(v - top) for v in values))


def oracle_direction(S, adj, tau, mode):
    """Mean over rows with an edge and a non-edge (a negative); S, adj nested lists (A x C)."""
    rows = []
    for i in range(len(S)):
        P = [c for c in range(len(S[i])) if adj[i][c]]
        N = [c for c in range(len(S[i])) if not adj[i][c]]
        if not P or not N:
            continue
        L = [v / tau for v in S[i]]
        if mode == "supcon":
            lse = _lse(L)
            rows.append(sum(lse - L[p] for p in P) / len(P))
        else:
            rows.append(sum(_lse([L[p]] + [L[n] for n in N]) - L[p] for p in P) / len(P))
    return sum(rows) / len(rows) if rows else 0.0


def oracle_uwe(S, adj, tau, mode):
    St = [list(col) for col in zip(*S)]
    adjt = [list(col) for col in zip(*adj)]
    return 0.5 * (oracle_direction(S, adj, tau, mode) + oracle_direction(St, adjt, tau, mode))


def _graph():
    # queries 100..104, targets 0..5 in the batch; query 100 also links target 1 (row 1's item), 102 links 0 and 3,
    # target 5 has no edge in the batch, query 104 has no edge either
    rows, cols = torch.tensor([100, 101, 102, 103, 104]), torch.tensor([0, 1, 2, 3, 4, 5])
    edges = torch.tensor([[100, 0], [101, 1], [102, 2], [103, 3], [100, 1], [102, 0], [102, 3], [999, 4], [103, 42]])
    return rows, cols, edges


def test_batch_adjacency_includes_other_rows_items() -> None:
    t = batch_adjacency(*_graph())
    W = t.pos
    assert W[0, 1] == 1 and W[2, 0] == 1 and W[2, 3] == 1  # edges to items another row brought in
    assert W[4].sum() == 0 and W[:, 5].sum() == 0 and W[:, 4].sum() == 0  # edges to items outside the batch ignored
    assert int(W.sum()) == 7


@pytest.mark.parametrize("mode", ["supcon", "per_positive"])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_loop_oracle(mode, seed) -> None:
    targets = batch_adjacency(*_graph())
    g = torch.Generator().manual_seed(seed)
    S = torch.rand(5, 6, generator=g, dtype=torch.float64) * 2 - 1
    tau = 0.2
    loss = get("uwe", temperature=tau, normalization=mode)(S, targets)
    assert loss.item() == pytest.approx(oracle_uwe(S.tolist(), targets.pos.tolist(), tau, mode), rel=1e-10)


@pytest.mark.parametrize("mode", ["supcon", "per_positive"])
def test_graph_neighbour_of_another_row_is_never_a_negative(mode) -> None:
    targets = batch_adjacency(*_graph())
    S = torch.rand(5, 6, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    obj = get("uwe", temperature=0.2, normalization=mode)
    diagonal_only = Targets(pos=torch.eye(5, 6, dtype=torch.float64))
    # the batch adjacency (W[0, 1] = 1: query 100 -> target 1, which row 1 brought in) is what is used ...
    assert obj(S, targets).item() == pytest.approx(oracle_uwe(S.tolist(), targets.pos.tolist(), 0.2, mode), rel=1e-10)
    # ... and it differs from treating that neighbour as a negative
    assert abs(obj(S, targets).item() - obj(S, diagonal_only).item()) > 1e-3
    # raising the neighbour's similarity is a pull, never a push, in the per-positive form and for query 100's term
    S = S.clone().requires_grad_()
    obj(S, targets).backward()
    if mode == "per_positive":
        assert (S.grad[targets.pos > 0] < 0).all()
        assert (S.grad[targets.pos == 0] >= 0).all()
    else:
        assert S.grad[0, 1] < S.grad[0, 2] and S.grad[2, 0] < S.grad[2, 1]


@pytest.mark.parametrize("mode", ["supcon", "per_positive"])
def test_rows_without_edges_dropped_and_gradients_finite(mode) -> None:
    S = torch.randn(3, 3, dtype=torch.float64, requires_grad=True)
    adj = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]], dtype=torch.float64)
    loss = get("uwe", temperature=0.5, normalization=mode)(S, Targets(pos=adj))
    loss.backward()
    assert loss.item() == pytest.approx(oracle_uwe(S.tolist(), adj.tolist(), 0.5, mode), rel=1e-10)
    assert torch.isfinite(S.grad).all()
    # query 1 has no edge: no row of its own, but it stays a negative of every target (column direction)
    assert (S.grad[1] > 0).all()


def test_per_positive_without_negatives_is_zero() -> None:
    S = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    loss = get("uwe", normalization="per_positive")(S, Targets(pos=torch.ones(2, 3, dtype=torch.float64)))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(S.grad).all()


def test_one_edge_per_node_is_symmetric_infonce() -> None:
    S = torch.randn(4, 4, dtype=torch.float64)
    t = Targets.diagonal(4)
    both = 0.5 * (get("infonce", temperature=0.3)(S, t) + get("infonce", temperature=0.3)(S.T, t.transpose()))
    for mode in ("supcon", "per_positive"):
        assert get("uwe", temperature=0.3, normalization=mode)(S, t).item() == pytest.approx(both.item(), rel=1e-12)


@pytest.mark.parametrize("tile", [1, 2, 3, 5])
def test_tiled_parity_supcon(tile) -> None:
    targets = batch_adjacency(*_graph())
    g = torch.Generator().manual_seed(11)
    q = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    c = torch.randn(6, 4, generator=g, dtype=torch.float64, requires_grad=True)
    dense = get("uwe", temperature=0.3)(q @ c.T, targets)
    gq, gc = torch.autograd.grad(dense, (q, c))
    tiled = ContrastiveLoss("uwe", temperature=0.3, tile_size=tile, similarity="dot")(q, c, targets)
    tq, tc = torch.autograd.grad(tiled, (q, c))
    assert tiled.item() == pytest.approx(dense.item(), rel=1e-12)
    assert torch.allclose(tq, gq, atol=1e-12) and torch.allclose(tc, gc, atol=1e-12)


def test_per_positive_is_not_tileable_and_status_partial() -> None:
    with pytest.raises(ValueError, match="not row-separable"):
        ContrastiveLoss("uwe", normalization="per_positive", tile_size=2)
    info = get("uwe").info
    assert info.status is Status.PARTIAL and "unverified" in info.notes
    with pytest.raises(ValueError):
        get("uwe", normalization="mean")
