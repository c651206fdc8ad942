"""Example / Batch: candidate layout, targets with several positives, same-group false-negative masking."""

from __future__ import annotations

import math
import random

import torch

from contrastkit import ContrastiveLoss
from contrastkit.data import Batch, Example, collate

EXAMPLES = (
    Example("a0", ("p0",), ("n0",), group="g"),
    Example("a1", ("p1a", "p1b"), ()),
    Example("a2", ("p2",), ("n2a", "n2b"), group="g"),
    Example("a3", (), ("n3",), label=1),
)


def test_candidate_layout():
    batch = collate(EXAMPLES)
    assert isinstance(batch, Batch) and len(batch) == 4
    assert batch.anchors == ["a0", "a1", "a2", "a3"]
    # every example's positives in example order, then every example's negatives
    assert batch.candidates == ("p0", "p1a", "p1b", "p2", "n0", "n2a", "n2b", "n3")
    assert batch.candidate_owner == (0, 1, 1, 2, 0, 2, 2, 3)
    assert batch.positive_columns() == [[0], [1, 2], [3], []]
    assert EXAMPLES[2].texts() == ("a2", "p2", "n2a", "n2b")


def test_targets_mark_own_positives_several_per_row():
    batch = collate([Example("a", ("p", "q")), Example("b", ("r",), ("s",)), Example("c", ("t", "u", "v"))])
    pos, valid, bias = batch.targets().dense()
    want = torch.zeros(3, 7)
    want[0, [0, 1]] = 1
    want[1, 2] = 1
    want[2, [3, 4, 5]] = 1
    assert torch.equal(pos, want)
    assert bool(valid.all()) and bias is None
    assert not batch.targets().has_validity  # distinct groups: nothing to mask


def test_same_group_masking():
    batch = collate(EXAMPLES)
    pos, valid, _ = batch.targets().dense()
    owner = batch.candidate_owner
    n_pos = sum(len(e.positives) for e in EXAMPLES)
    for i, ex in enumerate(EXAMPLES):
        for c, o in enumerate(owner):
            own_positive = o == i and c < n_pos
            assert pos[i, c] == float(own_positive), (i, c)
            hard_negative = c >= n_pos
            same_group = ex.group is not None and EXAMPLES[o].group == ex.group and o != i
            # masked exactly: another same-group example's positives; never own positives, never hard negatives
            assert bool(valid[i, c]) == (own_positive or hard_negative or not same_group), (i, c)
    assert not valid[0, 3] and not valid[2, 0]  # a0 vs p2, a2 vs p0 (both group g)
    assert valid[0, 5] and valid[0, 6]  # a2's hard negatives stay negatives for a0


def test_group_none_never_masks_and_empty_positives_are_rows_without_positive():
    batch = collate([Example("a", ("p",)), Example("b", ("q",)), Example("c")])
    pos, valid, _ = batch.targets().dense()
    assert valid.all() and pos.sum(1).tolist() == [1.0, 1.0, 0.0]
    assert collate([]).targets().shape == (0, 0)
    assert collate([Example("x", labels=(1, 2))]).targets().shape == (1, 0)


def test_infonce_on_batch_targets_matches_a_loop():
    """End to end: the in-batch InfoNCE (multiple positives: mean over positives of -log softmax) with masking."""
    rng = random.Random(0)
    batch = collate(EXAMPLES[:3])
    gen = torch.Generator().manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(3, 8, generator=gen, dtype=torch.float64), dim=-1)
    c = torch.nn.functional.normalize(torch.randn(len(batch.candidates), 8, generator=gen, dtype=torch.float64), dim=-1)
    tau = 0.1 + rng.random() * 0.1
    loss = ContrastiveLoss("infonce", temperature=tau, similarity="dot")(q, c, batch.targets())
    _, valid, _ = batch.targets().dense()
    rows = []
    for i, cols in enumerate(batch.positive_columns()):
        logits = [float(q[i] @ c[k]) / tau for k in range(len(batch.candidates)) if valid[i, k]]
        lse = math.log(sum(math.exp(x) for x in logits))
        rows.append(sum(lse - float(q[i] @ c[k]) / tau for k in cols) / len(cols))
    assert math.isclose(float(loss), sum(rows) / len(rows), rel_tol=1e-9)
