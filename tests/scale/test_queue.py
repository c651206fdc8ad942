"""MemoryQueue: queue columns equal the same columns passed explicitly; FIFO order; exact state round trip."""

import io
from collections import deque

import pytest
import torch

from contrastkit import ContrastiveLoss, Targets
from contrastkit.scale.queue import MemoryQueue, append_columns

A, C, K, D = 10, 7, 9, 5


def _targets(kind: str, g: torch.Generator) -> Targets:
    if kind == "diagonal":
        return Targets.from_index(torch.arange(A) % C, num_cols=C)
    if kind == "lists":
        index = torch.randint(-1, C, (A, 3), generator=g)
        index[0] = -1
        return Targets.from_lists(index, num_cols=C)
    if kind == "ids-self":
        # rows 7..9 would exclude columns 7..9 (queue columns) if self exclusion were kept as an offset
        return Targets.from_ids(
            torch.randint(0, 3, (A,), generator=g), torch.randint(0, 3, (C,), generator=g), exclude_self=True
        )
    if kind == "id-mask":
        rows = torch.randint(-2, 2, (A,), generator=g)  # negative ids too
        cols = torch.randint(-2, 2, (C,), generator=g)
        return Targets.from_index(torch.arange(A) % C, num_cols=C).with_id_mask(rows, cols)
    if kind == "dense-bias":
        valid = torch.rand(A, C, generator=g) > 0.2
        pos = (torch.rand(A, C, generator=g) < 0.3).double() * valid
        bias = torch.randn(A, C, generator=g, dtype=torch.float64)
        return Targets(pos=pos, valid=valid, bias=bias)
    if kind == "self-offset":
        t = Targets.from_index(torch.arange(A) % C, num_cols=C)
        return Targets(pos_index=t.pos_index, num_cols=C, self_offset=-2)
    raise ValueError(kind)


KINDS = ["diagonal", "lists", "ids-self", "id-mask", "dense-bias", "self-offset"]
LOSSES = {
    "infonce": lambda: ContrastiveLoss("infonce", temperature=0.2),
    "infonce-tiled": lambda: ContrastiveLoss("infonce", temperature=0.2, tile_size=3),
    "summarglh-tiled": lambda: ContrastiveLoss("summarglh", temperature=0.5, tile_size=4, tile_cols=5),
    "siglip": lambda: ContrastiveLoss("siglip"),
}


def _explicit(targets: Targets, k: int) -> Targets:
    """The same extra columns written out densely by hand."""
    W, M, B = targets.dense(dtype=torch.float64)
    W = torch.cat([W, torch.zeros(A, k, dtype=W.dtype)], 1)
    M = torch.cat([M, torch.ones(A, k, dtype=torch.bool)], 1)
    B = None if B is None else torch.cat([B, torch.zeros(A, k, dtype=B.dtype)], 1)
    return Targets(pos=W, valid=M, bias=B)


@pytest.mark.parametrize("loss_name", list(LOSSES))
@pytest.mark.parametrize("kind", KINDS)
def test_queue_columns_equal_explicit_columns(kind: str, loss_name: str) -> None:
    g = torch.Generator().manual_seed(len(kind) + 17 * len(loss_name))
    a = torch.randn(A, D, generator=g, dtype=torch.float64, requires_grad=True)
    c = torch.randn(C, D, generator=g, dtype=torch.float64, requires_grad=True)
    past = torch.randn(K + 4, D, generator=g, dtype=torch.float64)
    queue = MemoryQueue(K, D, dtype=torch.float64)
    queue.enqueue(past[:6])
    queue.enqueue(past[6:])  # wraps: holds past[4:], oldest first
    targets = _targets(kind, g)
    loss_fn = LOSSES[loss_name]()

    cands, extended = queue.extend(c, targets)
    assert extended.shape == (A, C + K)
    for got, want in zip(extended.dense(torch.float64), _explicit(targets, K).dense(torch.float64)):
        if want is None:
            assert got is None
        else:
            torch.testing.assert_close(got, want, rtol=0, atol=0)

    loss = loss_fn(a, cands, extended)
    ga, gc = torch.autograd.grad(loss, [a, c])
    ref = loss_fn(a, torch.cat([c, past[4:]]), _explicit(targets, K))
    ra, rc = torch.autograd.grad(ref, [a, c])
    torch.testing.assert_close(loss, ref, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(ga, ra, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gc, rc, rtol=1e-10, atol=1e-12)
    assert not queue.tensor().requires_grad


def test_fifo_matches_a_deque() -> None:
    g = torch.Generator().manual_seed(0)
    queue, oracle = MemoryQueue(6, 2), deque(maxlen=6)
    for n in [1, 4, 3, 0, 7, 2, 6, 13]:
        x = torch.randn(n, 2, generator=g)
        queue.enqueue(x)
        oracle.extend(x.tolist())
        assert len(queue) == len(oracle)
        assert queue.tensor().tolist() == list(oracle)


def test_state_dict_round_trip_continues_identically() -> None:
    g = torch.Generator().manual_seed(1)
    first = MemoryQueue(5, 3)
    first.enqueue(torch.randn(4, 3, generator=g))
    first.enqueue(torch.randn(3, 3, generator=g))  # wrapped, ptr != 0
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    second = MemoryQueue(5, 3)
    second.load_state_dict(torch.load(buffer))
    assert len(second) == len(first) == 5
    assert torch.equal(second.tensor(), first.tensor())
    nxt = torch.randn(2, 3, generator=g)
    first.enqueue(nxt)
    second.enqueue(nxt)
    assert torch.equal(second.tensor(), first.tensor())
    assert torch.equal(second.tensor()[-2:], nxt)

    partial = MemoryQueue(5, 3)
    partial.enqueue(nxt)
    restored = MemoryQueue(5, 3)
    restored.load_state_dict(partial.state_dict())
    assert len(restored) == 2 and torch.equal(restored.tensor(), nxt)


def test_enqueue_detaches_and_casts() -> None:
    queue = MemoryQueue(4, 3)
    x = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    queue.enqueue(x * 2)
    got = queue.tensor()
    assert got.dtype == torch.float32 and not got.requires_grad
    torch.testing.assert_close(got, (x * 2).detach().float())


def test_empty_queue_and_errors() -> None:
    queue = MemoryQueue(4, 3)
    c, t = torch.randn(2, 3), Targets.diagonal(2)
    cands, targets = queue.extend(c, t)
    assert cands is c and targets is t
    with pytest.raises(ValueError, match="expected"):
        queue.enqueue(torch.randn(2, 4))
    with pytest.raises(ValueError, match="columns"):
        queue.extend(c, Targets.diagonal(3))
    with pytest.raises(ValueError):
        MemoryQueue(0, 3)
    assert append_columns(t, 0) is t
