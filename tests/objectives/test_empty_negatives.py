"""A row with a positive but no valid negative is dropped (``objectives.md`` 0.4), dense and tiled alike.

Such a row's InfoNCE loss is 0 with a zero gradient; kept, it only dilutes
the mean. pytorch-metric-learning drops it too.
"""

from __future__ import annotations

import random

import pytest
import torch
import torch.nn.functional as F
from oracles import logits, mean_kept, r1_rows, r2_rows, to_lists, transpose

from contrastkit import ContrastiveLoss
from contrastkit.objectives import PositiveMarginal, Targets, WeightedCE, get
from contrastkit.objectives.reducers import row_parts

TILES = [None, 1, 2, 3]


def _problem(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, Targets, list, list]:
    """Five rows: row 1's only valid column is its positive; row 3's two valid columns are both positives;
    row 4 has no positive. The others are ordinary."""
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    c = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    W = [[0.0] * 6 for _ in range(5)]
    M = [[True] * 6 for _ in range(5)]
    for i, cols in {0: [0], 1: [2], 2: [1, 4], 3: [3, 5]}.items():
        for col in cols:
            W[i][col] = 1.0
    M[1] = [c == 2 for c in range(6)]
    M[3] = [c in (3, 5) for c in range(6)]
    targets = Targets(pos=torch.tensor(W, dtype=torch.float64), valid=torch.tensor(M))
    return a, c, targets, W, M


def _logits(a: torch.Tensor, c: torch.Tensor, scale: float) -> list:
    return logits(to_lists(F.normalize(a, dim=-1) @ F.normalize(c, dim=-1).T), scale)


@pytest.mark.parametrize("tile_size", TILES)
def test_infonce_drops_a_row_without_negatives(tile_size) -> None:
    a, c, targets, W, M = _problem()
    loss_fn = ContrastiveLoss("infonce", temperature=0.5, tile_size=tile_size)
    rows = r1_rows(_logits(a, c, 2.0), W, M)
    assert [r is None for r in rows] == [False, True, False, True, True]
    (parts,) = loss_fn.parts(a, c, targets)
    assert int(parts.kept) == 2
    assert float(loss_fn(a, c, targets)) == pytest.approx(mean_kept(rows), rel=1e-12)


@pytest.mark.parametrize("tile_size", TILES)
def test_clip_drops_such_rows_in_both_directions(tile_size) -> None:
    a, c, targets, W, M = _problem(seed=1)
    a, c = a[:5], c[:5]
    targets = Targets(pos=targets.pos[:, :5], valid=targets.valid[:, :5])
    W, M = [r[:5] for r in W], [r[:5] for r in M]
    L = _logits(a, c, 4.0)
    forward, backward = r1_rows(L, W, M), r1_rows(transpose(L), transpose(W), transpose(M))
    loss_fn = ContrastiveLoss("clip", temperature=0.25, learnable_temperature=False, tile_size=tile_size)
    kept = [int(p.kept) for p in loss_fn.parts(a, c, targets)]
    assert kept == [sum(r is not None for r in forward), sum(r is not None for r in backward)]
    expected = 0.5 * (mean_kept(forward) + mean_kept(backward))
    assert float(loss_fn(a, c, targets)) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("tile_size", TILES)
def test_summarglh_drops_them_too(tile_size) -> None:
    a, c, targets, W, M = _problem(seed=2)
    rows = r2_rows(_logits(a, c, 2.0), W, M)
    assert [r is None for r in rows] == [False, True, False, True, True]
    loss_fn = ContrastiveLoss("summarglh", temperature=0.5, tile_size=tile_size)
    assert int(loss_fn.parts(a, c, targets)[0].kept) == 2
    assert float(loss_fn(a, c, targets)) == pytest.approx(mean_kept(rows), rel=1e-12)


def test_dense_and_streamed_forms_agree_on_kept_rows() -> None:
    rng = random.Random(3)
    L = torch.tensor([[rng.gauss(0, 1) for _ in range(6)] for _ in range(5)], dtype=torch.float64)
    _, _, targets, W, M = _problem()
    Wt, Mt = targets.pos, targets.valid
    for reducer, oracle in ((WeightedCE(), r1_rows), (PositiveMarginal(), r2_rows)):
        rows = reducer.rows(L, Wt, Mt)
        assert rows.keep.tolist() == [r is not None for r in oracle(L.tolist(), W, M)]
        assert int(row_parts(rows).kept) == 2


def test_soft_targets_keep_rows_whose_every_column_carries_weight() -> None:
    """A soft-target cross-entropy is not a positive/negative split: ``require_negative=False`` keeps its rows."""
    gen = torch.Generator().manual_seed(4)
    L = torch.randn(4, 4, generator=gen, dtype=torch.float64)
    W = torch.rand(4, 4, generator=gen, dtype=torch.float64) + 0.1  # every column weighted
    M = torch.ones(4, 4, dtype=torch.bool)
    rows = WeightedCE(require_negative=False).rows(L, W, M)
    expected = r1_rows(L.tolist(), W.tolist(), M.tolist(), require_negative=False)
    assert rows.keep.all()
    assert rows.loss.tolist() == pytest.approx(expected, rel=1e-12)
    assert not WeightedCE().rows(L, W, M).keep.any()
    labels = torch.tensor([[1.0, 1.0], [1.0, 0.5], [0.5, 1.0], [1.0, 0.2]])  # cosine > 0 for every pair
    views = F.normalize(torch.randn(2, 4, 8, generator=gen, dtype=torch.float64), dim=-1)
    softcon = get("softcon", pair_loss="soft_ce", soft_weight=1.0)
    hard_only = get("softcon", pair_loss="soft_ce", soft_weight=0.0)
    assert float(softcon(views, labels)) != pytest.approx(float(hard_only(views, labels)))


@pytest.mark.parametrize("normalization", ["supcon", "per_positive"])
def test_uwe_drops_them_in_either_normalisation(normalization) -> None:
    a, c, targets, _, _ = _problem(seed=5)
    S = F.normalize(a, dim=-1) @ F.normalize(c, dim=-1).T
    obj = get("uwe", normalization=normalization)
    forward = obj.one_direction(S, targets)
    assert int(forward.kept) == 2  # rows 0 and 2: row 1 and row 3 have no negative, row 4 no positive


@pytest.mark.parametrize("tile", [(None, None), (1, None), (2, 3), (4, 1)])
def test_single_index_targets_with_an_id_mask(tile) -> None:
    """The tiled engine's single-index path: row 3's every other column shares its id, so it has no negative."""
    a, c, *_ = _problem(seed=6)
    a, c = a[:4], c[:4]
    targets = Targets.from_index(torch.arange(4), num_cols=4).with_id_mask(
        torch.tensor([1, 1, 1, 1]), torch.tensor([1, 1, 1, 2])
    )
    W, M, _ = targets.dense(torch.float64)
    rows = r1_rows(_logits(a, c, 2.0), W.tolist(), M.tolist())
    assert [r is None for r in rows] == [False, False, False, True]
    tile_size, tile_cols = tile
    loss_fn = ContrastiveLoss("infonce", temperature=0.5, tile_size=tile_size, tile_cols=tile_cols)
    assert int(loss_fn.parts(a, c, targets)[0].kept) == 3
    assert float(loss_fn(a, c, targets)) == pytest.approx(mean_kept(rows), rel=1e-12)
