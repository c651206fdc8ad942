"""Targets: dense and compact forms materialise the same W, M, B; blocks are exact slices."""

import math

import pytest
import torch

from contrastkit.objectives import Targets


def _loop_block(t: Targets) -> tuple[list[list[float]], list[list[bool]]]:
    """Reference: apply the documented combination rules entry by entry."""
    A, C = t.shape
    W = [[0.0] * C for _ in range(A)]
    M = [[True] * C for _ in range(A)]
    for i in range(A):
        for c in range(C):
            w = 0.0
            if t.pos is not None:
                w += float(t.pos[i, c])
            if t.pos_index is not None:
                for k, j in enumerate(t.pos_index[i].tolist()):
                    if j == c:
                        w += 1.0 if t.pos_weight is None else float(t.pos_weight[i, k])
            if t.pos_row_ids is not None and int(t.pos_row_ids[i]) == int(t.pos_col_ids[c]):
                w += 1.0
            m = bool(t.valid[i, c]) if t.valid is not None else True
            if t.exclude_index is not None and c in t.exclude_index[i].tolist():
                m = False
            if t.mask_row_ids is not None and int(t.mask_row_ids[i]) == int(t.mask_col_ids[c]) and w == 0:
                m = False
            if t.self_offset is not None and c == i + t.self_offset:
                m = False
            W[i][c] = w if m else 0.0
            M[i][c] = m
    return W, M


def _compact_examples() -> list[Targets]:
    g = torch.Generator().manual_seed(0)
    A, C = 7, 9
    idx = torch.randint(-1, C, (A, 3), generator=g)
    weights = torch.rand(A, 3, generator=g)
    rows, cols = torch.randint(0, 3, (A,), generator=g), torch.randint(0, 3, (C,), generator=g)
    valid = torch.rand(A, C, generator=g) > 0.2
    pos = (torch.rand(A, C, generator=g) < 0.2).float() * valid
    return [
        Targets(pos=pos, valid=valid),
        Targets.from_index(torch.randint(-1, C, (A,), generator=g), num_cols=C),
        Targets.from_lists(idx, num_cols=C, weight=weights),
        Targets.from_ids(rows, cols, exclude_self=True),
        Targets.diagonal(A, num_cols=C, offset=2).with_id_mask(rows, cols),
        Targets(pos_index=idx, exclude_index=torch.randint(-1, C, (A, 2), generator=g), self_offset=-1, num_cols=C),
    ]


@pytest.mark.parametrize("t", _compact_examples())
def test_dense_matches_loop_rules(t: Targets) -> None:
    W, M, _ = t.dense(dtype=torch.float64)
    ref_w, ref_m = _loop_block(t)
    assert torch.allclose(W, torch.tensor(ref_w, dtype=torch.float64))
    assert M.tolist() == ref_m


@pytest.mark.parametrize("t", _compact_examples())
@pytest.mark.parametrize(
    ("rows", "cols"), [(slice(0, 3), slice(0, 4)), (slice(2, 7), slice(5, 9)), (slice(6, 7), slice(0, 9))]
)
def test_block_is_slice_of_dense(t: Targets, rows: slice, cols: slice) -> None:
    W, M, _ = t.dense()
    bw, bm, _ = t.block(rows, cols)
    assert torch.equal(bw, W[rows, cols])
    assert torch.equal(bm, M[rows, cols])


def test_from_index_minus_one_row_has_no_positive() -> None:
    W, M, _ = Targets.from_index(torch.tensor([2, -1, 0]), num_cols=3).dense()
    assert W.tolist() == [[0, 0, 1], [0, 0, 0], [1, 0, 0]]
    assert bool(M.all())


def test_bias_index_and_dense_bias_add() -> None:
    t = Targets(
        bias=torch.ones(2, 3), bias_index=torch.tensor([[1], [2]]), bias_value=torch.tensor([[math.log(2)], [0.5]])
    )
    _, _, B = t.dense()
    assert torch.allclose(B, torch.tensor([[1, 1 + math.log(2), 1], [1, 1, 1.5]]))


@pytest.mark.parametrize("t", _compact_examples())
def test_transpose_is_transpose(t: Targets) -> None:
    W, M, _ = t.dense()
    tw, tm, _ = t.transpose().dense()
    assert torch.equal(tw, W.T)
    assert torch.equal(tm, M.T)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pos": -torch.ones(2, 2)}, "pos: positive weights must be >= 0"),
        ({"pos": torch.ones(2, 2), "valid": torch.zeros(2, 2, dtype=torch.bool)}, "must imply"),
        ({"valid": torch.ones(2, 2)}, "valid: expected a bool tensor"),
        ({"pos": torch.ones(2, 2), "bias": torch.ones(3, 2)}, "Targets.bias: shape"),
        ({"pos_index": torch.tensor([[5]]), "num_cols": 3}, "pos_index: column indices"),
        ({"pos_row_ids": torch.zeros(2), "num_cols": 2}, "given together"),
        ({"pos_index": torch.tensor([[0]])}, "cannot infer"),
    ],
)
def test_bad_targets_name_the_field(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Targets(**kwargs)


def test_values_are_validated_where_targets_are_built_not_where_they_are_derived(monkeypatch) -> None:
    """Value checks read tensor contents (a host sync each on a GPU): once at construction, never per derivation."""
    calls = []
    original = Targets.validate
    monkeypatch.setattr(Targets, "validate", lambda self: calls.append(1) or original(self))
    t = Targets.from_ids(torch.tensor([0, 1, 0, 2]), torch.tensor([0, 1, 0, 2]), exclude_self=True)
    assert len(calls) == 1
    derived = t.row_slice(slice(1, 3)).append_columns(2).to("cpu").transpose()
    assert len(calls) == 1 and derived.shape == (6, 2)
    with pytest.raises(ValueError, match="pos_weight"):
        Targets.from_lists(torch.tensor([[0, 1]]), num_cols=2, weight=torch.tensor([[1.0, -1.0]]))


def test_every_tensor_part_has_a_role() -> None:
    """Slicing, padding and moving follow Targets.parts(): a tensor field without a role would be skipped by them."""
    from dataclasses import fields

    tensor_fields = {f.name for f in fields(Targets) if "Tensor" in str(f.type)}
    assert {name for name, _, _ in Targets.parts()} == tensor_fields
