"""The exact tiled engine equals the dense computation: values and gradients, every reducer and target form."""

from dataclasses import dataclass, field

import pytest
import torch

from contrastkit import ContrastiveLoss
from contrastkit.objectives import Decoupled, PairwiseLSE, PointwiseSigmoid, PositiveMarginal, Targets, WeightedCE
from contrastkit.objectives.reducers import reduce_rows
from contrastkit.scale import tiled_loss

REDUCERS = [
    WeightedCE(),
    WeightedCE(normalize=False),
    WeightedCE(normalize=False, per_positive=True),
    PositiveMarginal(),
    Decoupled(),
    Decoupled(normalize=False),
    PairwiseLSE(),
    PairwiseLSE(per_positive=True),
    PointwiseSigmoid(),
]


def _targets(kind: str, A: int, C: int, g: torch.Generator) -> Targets:
    if kind == "dense-soft":
        valid = torch.rand(A, C, generator=g) > 0.15
        pos = (torch.rand(A, C, generator=g) < 0.1).double() * torch.rand(A, C, generator=g).double() * valid
        pos[0] = 0  # a row with no positive
        valid[1], pos[1] = False, 0  # a row with nothing valid
        return Targets(pos=pos, valid=valid)
    if kind == "lists":
        idx = torch.randint(-1, C, (A, 3), generator=g)
        idx[2] = -1
        return Targets.from_lists(idx, num_cols=C)
    if kind == "ids-masked":
        rows = torch.randint(0, 4, (A,), generator=g)
        return Targets.diagonal(A, num_cols=C).with_id_mask(rows, torch.randint(0, 4, (C,), generator=g))
    if kind == "self":
        return Targets.from_ids(
            torch.randint(0, 5, (A,), generator=g), torch.randint(0, 5, (C,), generator=g), exclude_self=True
        )
    raise ValueError(kind)


def _dense(a, c, t, reducer, scale, bias):
    W, M, B = t.dense(dtype=a.dtype)
    L = (a @ c.T) * scale + bias + (0 if B is None else B)
    return reduce_rows(reducer.rows(L, W, M))


def _grads(fn, *leaves):
    for x in leaves:
        x.grad = None
    loss = fn()
    loss.backward()
    return loss.detach(), [x.grad.clone() for x in leaves]


@pytest.mark.parametrize("reducer", REDUCERS, ids=lambda r: repr(r))
@pytest.mark.parametrize("kind", ["dense-soft", "lists", "ids-masked", "self"])
@pytest.mark.parametrize(("tile_rows", "tile_cols"), [(1, None), (5, None), (64, None), (4, 7), (3, 1)])
def test_tiled_equals_dense(reducer, kind, tile_rows, tile_cols) -> None:
    g = torch.Generator().manual_seed(len(kind) * 31 + tile_rows)
    A, C, d = 13, 17, 6
    a = torch.randn(A, d, generator=g, dtype=torch.float64, requires_grad=True)
    c = torch.randn(C, d, generator=g, dtype=torch.float64, requires_grad=True)
    scale = torch.tensor(1.7, dtype=torch.float64, requires_grad=True)
    bias = torch.tensor(-0.3, dtype=torch.float64, requires_grad=True)
    t = _targets(kind, A, C, g)
    ref, ref_g = _grads(lambda: _dense(a, c, t, reducer, scale, bias), a, c, scale, bias)
    got, got_g = _grads(
        lambda: tiled_loss(a, c, t, reducer, scale=scale, bias=bias, tile_rows=tile_rows, tile_cols=tile_cols),
        a,
        c,
        scale,
        bias,
    )
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-12)
    for x, y in zip(got_g, ref_g):
        assert torch.isfinite(x).all()
        torch.testing.assert_close(x, y, rtol=1e-9, atol=1e-12)


def test_float32_parity_at_moderate_size() -> None:
    g = torch.Generator().manual_seed(1)
    n, d = 700, 64
    q = torch.randn(n, d, generator=g, requires_grad=True)
    p = torch.randn(n, d, generator=g, requires_grad=True)
    t = Targets.diagonal(n)
    dense, dg = _grads(lambda: ContrastiveLoss("infonce", temperature=0.05)(q, p, t), q, p)
    tiled, tg = _grads(lambda: ContrastiveLoss("infonce", temperature=0.05, tile_size=128)(q, p, t), q, p)
    torch.testing.assert_close(tiled, dense, rtol=1e-5, atol=1e-6)
    for x, y in zip(tg, dg):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-6)


def test_same_tensor_as_anchors_and_candidates() -> None:
    g = torch.Generator().manual_seed(2)
    z = torch.randn(10, 4, generator=g, dtype=torch.float64, requires_grad=True)
    t = Targets(pos_index=torch.cat([torch.arange(5, 10), torch.arange(5)])[:, None], self_offset=0, num_cols=10)
    ref, (rg,) = _grads(lambda: ContrastiveLoss("infonce", similarity="dot")(z, z, t), z)
    got, (gg,) = _grads(lambda: ContrastiveLoss("infonce", similarity="dot", tile_size=3)(z, z, t), z)
    torch.testing.assert_close(got, ref)
    torch.testing.assert_close(gg, rg)


@dataclass(eq=False, frozen=True)
class _SpyTargets(Targets):
    seen: list = field(default_factory=list)

    def _record(self, rows, cols):
        rows = rows or slice(0, self.num_rows)
        cols = cols or slice(0, self.num_cols)
        self.seen.append((min(rows.stop, self.num_rows) - rows.start, min(cols.stop, self.num_cols) - cols.start))

    def block(self, rows=None, cols=None, **kw):
        self._record(rows, cols)
        return super().block(rows, cols, **kw)

    def valid_block(self, rows, cols, **kw):
        self._record(rows, cols)
        return super().valid_block(rows, cols, **kw)

    def index_block(self, rows, cols, valid=None):
        self._record(rows, cols)
        return super().index_block(rows, cols, valid)


@pytest.mark.parametrize("positives", ["index", "lists"])
def test_never_materialises_more_than_a_tile(positives) -> None:
    A, C = 40, 50
    index = torch.arange(A)[:, None] if positives == "index" else torch.stack([torch.arange(A), torch.arange(A) + 1], 1)
    t = _SpyTargets(pos_index=index, self_offset=3, num_cols=C)
    a = torch.randn(A, 8, requires_grad=True)
    c = torch.randn(C, 8, requires_grad=True)
    tiled_loss(a, c, t, WeightedCE(), scale=torch.tensor(2.0), tile_rows=8, tile_cols=16).backward()
    assert t.seen and max(r * w for r, w in t.seen) <= 8 * 16


def test_all_rows_dropped_gives_zero_and_zero_grads() -> None:
    a = torch.randn(4, 3, requires_grad=True)
    c = torch.randn(5, 3, requires_grad=True)
    t = Targets.from_index(torch.full((4,), -1), num_cols=5)
    loss = tiled_loss(a, c, t, WeightedCE(), scale=torch.tensor(1.0), tile_rows=2)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(a.grad, torch.zeros_like(a)) and torch.equal(c.grad, torch.zeros_like(c))


def test_no_grad_forward_matches() -> None:
    a, c = torch.randn(6, 3), torch.randn(7, 3)
    t = Targets.from_index(torch.arange(6), num_cols=7)
    with torch.no_grad():
        got = tiled_loss(a, c, t, WeightedCE(), scale=torch.tensor(3.0), tile_rows=4)
    ref = _dense(a, c, t, WeightedCE(), 3.0, 0.0)
    torch.testing.assert_close(got, ref)


def test_rejects_non_streamable_and_bad_shapes() -> None:
    a, c = torch.randn(3, 2), torch.randn(4, 2)
    t = Targets.diagonal(3, num_cols=4)
    with pytest.raises(ValueError, match="no streamed form"):
        tiled_loss(a, c, t, PairwiseLSE(neg="max"), scale=torch.tensor(1.0))
    with pytest.raises(ValueError, match="targets shape"):
        tiled_loss(a, c, Targets.diagonal(3), WeightedCE(), scale=torch.tensor(1.0))
    with pytest.raises(ValueError, match="not row-separable"):
        ContrastiveLoss("lsepair", neg="max", tile_size=4)


@pytest.mark.parametrize("name", ["infonce", "clip", "lsepair"])
def test_parts_dense_equals_tiled(name) -> None:
    g = torch.Generator().manual_seed(5)
    n = 9
    a = torch.randn(n, 4, generator=g, dtype=torch.float64, requires_grad=True)
    c = torch.randn(n, 4, generator=g, dtype=torch.float64, requires_grad=True)
    idx = torch.arange(n)
    idx[3] = -1  # one row without a positive: kept count n - 1
    t = Targets.from_index(idx, num_cols=n)
    dense = ContrastiveLoss(name).parts(a, c, t)
    tiled = ContrastiveLoss(name, tile_size=4).parts(a, c, t)
    assert len(dense) == len(tiled) == (2 if name == "clip" else 1)
    assert int(dense[0].kept) == int(tiled[0].kept) == n - 1
    for d, t_ in zip(dense, tiled):
        torch.testing.assert_close(d.total, t_.total)
        assert int(d.kept) == int(t_.kept)
    ref = torch.autograd.grad(sum(p.total for p in dense), a)[0]
    got = torch.autograd.grad(sum(p.total for p in tiled), a)[0]
    torch.testing.assert_close(got, ref)


@pytest.mark.parametrize("tile", [None, 3])
def test_clip_reverse_direction_split_over_simulated_ranks(tile) -> None:
    """Two 'ranks' each scoring their own candidates against all anchors add up to the global reverse direction."""
    g = torch.Generator().manual_seed(9)
    n = 8
    img = torch.randn(n, 5, generator=g, dtype=torch.float64)
    txt = torch.randn(n, 5, generator=g, dtype=torch.float64)
    t = Targets.diagonal(n)
    loss_fn = ContrastiveLoss("clip", tile_size=tile)
    whole = loss_fn.parts(img, txt, t)
    halves = [slice(0, 3), slice(3, n)]  # uneven ranks
    forward_total = reverse_total = 0.0
    for rows in halves:
        local = Targets.from_index(torch.arange(n)[rows], num_cols=n)
        parts = loss_fn.parts(img[rows], txt, local, reverse=(txt[rows], img, local))
        forward_total += parts[0].total
        reverse_total += parts[1].total
    torch.testing.assert_close(forward_total, whole[0].total)
    torch.testing.assert_close(reverse_total, whole[1].total)
    with pytest.raises(ValueError, match="only for symmetric"):
        ContrastiveLoss("infonce").parts(img, txt, t, reverse=(txt, img, t))
