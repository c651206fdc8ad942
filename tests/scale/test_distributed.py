"""Two gloo processes equal one process holding the global batch: loss and parameter gradients.

The global batch has rows without positives (uneven kept counts per rank),
uneven candidate counts per rank and same-group false-negative masks whose
rows and columns live on different ranks.
"""

import os
import socket
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from contrastkit import ContrastiveLoss, Targets
from contrastkit.data.examples import Example, collate
from contrastkit.objectives.reducers import combine_parts
from contrastkit.scale.distributed import (
    gather_candidates,
    gather_with_grad,
    global_parts_loss,
    local_rows,
    mean_over_ranks,
    row_slice,
    world,
)
from contrastkit.scale.gradcache import GradCache

VOCAB, DIM, SEQ, WORLD, PER_RANK = 37, 8, 7, 2, 4

EXAMPLES = [
    # rank 0: rows 0-3 (4 positive and 4 negative candidates, 3 kept rows)
    Example("what is a cat", ("a small feline",), ("a large dog", "an engine"), group="pets"),
    Example("define river", ("flowing water", "a stream of water"), group="water"),
    Example("no answer here", (), ("unrelated text",)),
    Example("capital of peru", ("lima is the capital",), ("quito is a city",)),
    # rank 1: rows 4-7 (4 positive and 1 negative candidates, 4 kept rows); groups shared with rank 0
    Example("tell me about cats", ("cats purr",), group="pets"),
    Example("what is a lake", ("still water",), group="water"),
    Example("sum of two and two", ("four",), ("five",)),
    Example("colour of the sky", ("blue on clear days",)),
]


class TinyEncoder(nn.Module):
    """The Encoder contract in miniature: tokenize -> {"input_ids", "attention_mask"}, forward -> (n, dim)."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(VOCAB, DIM, dtype=torch.float64)
        self.proj = nn.Linear(DIM, DIM, dtype=torch.float64)

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        ids = torch.zeros(len(texts), SEQ, dtype=torch.long)
        mask = torch.zeros(len(texts), SEQ, dtype=torch.long)
        for i, text in enumerate(texts):
            tokens = [1 + (ord(ch) * 7 + j) % (VOCAB - 1) for j, ch in enumerate(text)][:SEQ]
            ids[i, : len(tokens)] = torch.tensor(tokens)
            mask[i, : len(tokens)] = 1
        return {"input_ids": ids, "attention_mask": mask}

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        h = self.emb(features["input_ids"])
        mask = features["attention_mask"][..., None].to(h.dtype)
        return self.proj(torch.tanh((h * mask).sum(1) / mask.sum(1).clamp(min=1)))


def _build(case: str) -> tuple[TinyEncoder, ContrastiveLoss]:
    torch.manual_seed(0)
    model = TinyEncoder()
    tile = 3 if case == "tiled" else None
    return model, ContrastiveLoss("infonce", temperature=0.2, learnable_temperature=True, tile_size=tile)


CASES = ["dense", "tiled", "gradcache"]


def _grads(model: nn.Module, loss_fn: nn.Module) -> list[torch.Tensor]:
    return [p.grad.clone() for p in [*model.parameters(), *loss_fn.parameters()]]


def _reference(case: str) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """One process, the whole global batch."""
    model, loss_fn = _build(case)
    batch = collate(EXAMPLES)
    a = model(model.tokenize(batch.anchors))
    c = model(model.tokenize(list(batch.candidates)))
    loss = loss_fn(a, c, batch.targets())
    loss.backward()
    return loss.detach(), _grads(model, loss_fn)


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    if sys.platform.startswith("linux"):
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD, timeout=timedelta(seconds=60))
    try:
        global_targets = collate(EXAMPLES).targets()
        rows = local_rows(PER_RANK)
        local = collate(EXAMPLES[rows])
        n_pos = sum(len(ex.positives) for ex in local.examples)
        results = {}
        for case in CASES:
            model, loss_fn = _build(case)
            ddp = DistributedDataParallel(model)
            anchors, candidates = model.tokenize(local.anchors), model.tokenize(list(local.candidates))
            targets = row_slice(global_targets, rows)

            def loss_of(a, c_local, loss_fn=loss_fn, targets=targets):
                return global_parts_loss(loss_fn.parts(a, gather_candidates(c_local, n_pos), targets))

            if case == "gradcache":
                loss = GradCache(3).loss(ddp, [anchors, candidates], lambda e, f=loss_of: f(e[0], e[1]))
            else:
                loss = loss_of(ddp(anchors), ddp(candidates))
                loss.backward()
            for p in loss_fn.parameters():  # DDP-style averaging for the loss's own parameters
                dist.all_reduce(p.grad)
                p.grad /= WORLD
            results[case] = (mean_over_ranks(loss), _grads(model, loss_fn))
        results["world"] = world()
        torch.save(results, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed gloo")
def test_two_processes_equal_one_process(tmp_path: Path) -> None:
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    for rank in range(WORLD):
        results = torch.load(tmp_path / f"rank{rank}.pt")
        assert results["world"] == (rank, WORLD)
        for case in CASES:
            ref_loss, ref_grads = _reference(case)
            loss, grads = results[case]
            torch.testing.assert_close(loss, ref_loss, rtol=1e-12, atol=1e-12, msg=f"{case} loss, rank {rank}")
            assert len(grads) == len(ref_grads) == 4
            for got, want in zip(grads, ref_grads):
                torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12, msg=f"{case} grads, rank {rank}")


def test_reference_batch_has_the_hard_cases() -> None:
    """The global batch really has uneven kept counts and same-group masks across ranks."""
    t = collate(EXAMPLES).targets()
    W, M, _ = t.dense()
    kept = (W > 0).any(1)
    assert kept[:PER_RANK].sum() == 3 and kept[PER_RANK:].sum() == 4
    # row 4 (rank 1, group "pets") masks row 0's positive (column 0, gathered from rank 0), and vice versa
    assert not M[4, 0] and not M[0, 4]  # row 0's group-mate positive "cats purr" is column 4
    assert collate(EXAMPLES).candidates[4] == "cats purr"


def _all_forms(g: torch.Generator) -> list[Targets]:
    A, C = 9, 11
    valid = torch.rand(A, C, generator=g) > 0.2
    return [
        Targets(pos=(torch.rand(A, C, generator=g) < 0.2).double() * valid, valid=valid, bias=torch.randn(A, C)),
        Targets.from_lists(torch.randint(-1, C, (A, 2), generator=g), num_cols=C, weight=torch.rand(A, 2)),
        Targets.from_ids(
            torch.randint(0, 3, (A,), generator=g), torch.randint(0, 3, (C,), generator=g), exclude_self=True
        ),
        Targets.diagonal(A, num_cols=C, offset=1).with_id_mask(torch.arange(A) % 3, torch.arange(C) % 4),
        Targets(
            pos_index=torch.randint(0, C, (A, 1), generator=g),
            exclude_index=torch.randint(-1, C, (A, 2), generator=g),
            bias_index=torch.randint(-1, C, (A, 2), generator=g),
            bias_value=torch.randn(A, 2, generator=g),
            num_cols=C,
            self_offset=-1,
        ),
    ]


@pytest.mark.parametrize("rows", [slice(0, 4), slice(4, 9), slice(3, 5), slice(9, 9), slice(2, None)])
def test_row_slice_equals_rows_of_the_dense_targets(rows: slice) -> None:
    for t in _all_forms(torch.Generator().manual_seed(rows.start)):
        got, want = row_slice(t, rows).dense(torch.float64), t.dense(torch.float64)
        for x, y in zip(got, want):
            assert (x is None) == (y is None)
            if x is not None:
                assert torch.equal(x, y[rows])
    with pytest.raises(ValueError, match="step-1"):
        row_slice(Targets.diagonal(4), slice(0, 4, 2))


def test_single_process_is_the_plain_computation() -> None:
    assert world() == (0, 1)
    assert local_rows(4) == slice(0, 4) and local_rows(4, rank=2) == slice(8, 12)
    x = torch.randn(5, 3, requires_grad=True)
    assert gather_with_grad(x) is x
    assert torch.equal(gather_candidates(x, 2), x)
    loss_fn = ContrastiveLoss("clip", temperature=0.1)
    parts = loss_fn.parts(torch.randn(5, 3), torch.randn(5, 3), Targets.from_index(torch.tensor([0, 1, -1, 3, 4]), 5))
    torch.testing.assert_close(global_parts_loss(parts), combine_parts(parts))
    assert mean_over_ranks(torch.tensor(2.5)) == 2.5
