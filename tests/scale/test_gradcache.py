"""GradCache equals the graph-keeping computation: loss and parameter gradients, dropout replayed."""

import pytest
import torch
from torch import nn

from contrastkit import ContrastiveLoss, Targets
from contrastkit.scale.gradcache import GradCache
from contrastkit.scale.matryoshka import MatryoshkaLoss

VOCAB, DIM, SEQ = 40, 12, 6


class TinyEncoder(nn.Module):
    """The Encoder contract in miniature: {"input_ids", "attention_mask"} -> (n, dim), with dropout."""

    def __init__(self, p: float = 0.3) -> None:
        super().__init__()
        self.emb = nn.Embedding(VOCAB, DIM, dtype=torch.float64)
        self.drop = nn.Dropout(p)
        self.proj = nn.Linear(DIM, DIM, dtype=torch.float64)

    @property
    def dim(self) -> int:
        return DIM

    def forward(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        h = self.drop(self.emb(features["input_ids"]))
        mask = features["attention_mask"][..., None].to(h.dtype)
        pooled = (h * mask).sum(1) / mask.sum(1).clamp(min=1)
        return self.proj(self.drop(torch.tanh(pooled)))


def _features(n: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    ids = torch.randint(1, VOCAB, (n, SEQ), generator=g)
    lengths = torch.randint(1, SEQ + 1, (n,), generator=g)
    mask = (torch.arange(SEQ)[None, :] < lengths[:, None]).long()
    return {"input_ids": ids * mask, "attention_mask": mask}


def _targets(A: int, C: int) -> Targets:
    """Several positives for some rows, a row without positive, same-id masking."""
    index = torch.full((A, 2), -1)
    index[:, 0] = torch.arange(A)
    index[1, 1] = A + 1
    index[3, 1] = A + 2
    index[5] = -1  # row 5 has no positive: dropped
    rows = torch.arange(A) % 5
    cols = torch.cat([torch.arange(A) % 5, torch.arange(A, C) + 100])
    return Targets.from_lists(index, num_cols=C).with_id_mask(rows, cols)


A, C = 8, 13
TARGETS = _targets(A, C)


def _loss(kind: str) -> nn.Module:
    if kind == "dense":
        return ContrastiveLoss("infonce", temperature=0.1, learnable_temperature=True)
    if kind == "tiled":
        return ContrastiveLoss("infonce", temperature=0.1, learnable_temperature=True, tile_size=3)
    if kind == "matryoshka":
        inner = ContrastiveLoss("infonce", temperature=0.1, learnable_temperature=True, tile_size=5)
        return MatryoshkaLoss(inner, dims=[DIM, 8, 3], weights=[1.0, 0.5, 0.25])
    raise ValueError(kind)


def _manual_chunks(features: dict[str, torch.Tensor], size: int) -> list[dict[str, torch.Tensor]]:
    n = features["input_ids"].shape[0]
    out = []
    start = 0
    while start < n:
        out.append({k: v[start : start + size] for k, v in features.items()})
        start += size
    return out


def _params(*modules: nn.Module) -> list[nn.Parameter]:
    return [p for m in modules for p in m.parameters()]


def _zero(*modules: nn.Module) -> None:
    for p in _params(*modules):
        p.grad = None


def _reference(model, loss_fn, sides, chunk: int | None, seed: int):
    """Graph-keeping computation; ``chunk`` None = one forward per side, else the same chunk order as GradCache."""
    _zero(model, loss_fn)
    torch.manual_seed(seed)
    embs = []
    for side in sides:
        parts = [model(side)] if chunk is None else [model(c) for c in _manual_chunks(side, chunk)]
        embs.append(torch.cat(parts))
    loss = loss_fn(embs[0], embs[1], TARGETS)
    loss.backward()
    after = torch.rand(3)
    return loss.detach(), [p.grad.clone() for p in _params(model, loss_fn)], after


def _cached(model, loss_fn, sides, chunk: int, seed: int):
    _zero(model, loss_fn)
    torch.manual_seed(seed)
    loss = GradCache(chunk).loss(model, sides, lambda e: loss_fn(e[0], e[1], TARGETS))
    after = torch.rand(3)
    return loss, [p.grad.clone() for p in _params(model, loss_fn)], after


def _setup(kind: str):
    g = torch.Generator().manual_seed(7)
    torch.manual_seed(0)
    model, loss_fn = TinyEncoder(), _loss(kind)
    return model, loss_fn, [_features(A, g), _features(C, g)]


CHUNKS = [1, 3, 5, 8, 64]
KINDS = ["dense", "tiled", "matryoshka"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("chunk", CHUNKS)
def test_equals_full_batch_with_dropout_replayed(kind: str, chunk: int) -> None:
    model, loss_fn, sides = _setup(kind)
    model.train()
    ref_loss, ref_grads, ref_after = _reference(model, loss_fn, sides, chunk, seed=11)
    loss, grads, after = _cached(model, loss_fn, sides, chunk, seed=11)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-12, atol=1e-12)
    assert len(grads) == len(ref_grads) == 4  # emb, proj weight + bias, temperature
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    # the RNG is left where the plain computation leaves it
    torch.testing.assert_close(after, ref_after, rtol=0, atol=0)
    # the check can fail: other dropout masks give other gradients
    _, other, _ = _reference(model, loss_fn, sides, chunk, seed=12)
    assert not torch.allclose(other[0], ref_grads[0])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("chunk", [2, 5, 13])
def test_equals_single_forward_without_dropout(kind: str, chunk: int) -> None:
    model, loss_fn, sides = _setup(kind)
    model.eval()
    ref_loss, ref_grads, _ = _reference(model, loss_fn, sides, None, seed=3)
    loss, grads, _ = _cached(model, loss_fn, sides, chunk, seed=3)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-12, atol=1e-12)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_gradients_accumulate_like_backward() -> None:
    model, loss_fn, sides = _setup("dense")
    model.train()
    _, ref_grads, _ = _reference(model, loss_fn, sides, 3, seed=5)
    existing = [torch.full_like(p, 0.5) for p in _params(model, loss_fn)]
    for p, e in zip(_params(model, loss_fn), existing):
        p.grad = e.clone()
    torch.manual_seed(5)
    GradCache(3).loss(model, sides, lambda e: loss_fn(e[0], e[1], TARGETS))
    for p, e, want in zip(_params(model, loss_fn), existing, ref_grads):
        torch.testing.assert_close(p.grad, e + want, rtol=1e-10, atol=1e-12)


def test_scale_loss_scales_gradients_not_the_returned_loss() -> None:
    model, loss_fn, sides = _setup("dense")
    model.eval()
    ref_loss, ref_grads, _ = _reference(model, loss_fn, sides, None, seed=0)
    _zero(model, loss_fn)
    loss = GradCache(4).loss(model, sides, lambda e: loss_fn(e[0], e[1], TARGETS), scale_loss=lambda x: 8.0 * x)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-12, atol=0)
    for p, want in zip(_params(model, loss_fn), ref_grads):
        torch.testing.assert_close(p.grad, 8.0 * want, rtol=1e-10, atol=1e-12)


def test_unused_side_is_not_replayed_and_loss_is_detached() -> None:
    model, loss_fn, sides = _setup("dense")
    model.eval()
    calls = []

    def encoder(features):
        calls.append(features["input_ids"].shape[0])
        return model(features)

    _zero(model, loss_fn)
    extra = {k: v[:4] for k, v in sides[0].items()}
    loss = GradCache(5).loss(encoder, [*sides, extra], lambda e: loss_fn(e[0], e[1], TARGETS))
    assert not loss.requires_grad
    # first pass: 8 -> 5+3, 13 -> 5+5+3, 4; replay: only the two used sides
    assert calls == [5, 3, 5, 5, 3, 4, 5, 3, 5, 5, 3]


def test_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        GradCache(0)
    model = TinyEncoder()
    bad = {"input_ids": torch.zeros(4, SEQ, dtype=torch.long), "attention_mask": torch.ones(3, SEQ)}
    with pytest.raises(ValueError, match="batch size"):
        GradCache(2).loss(model, [bad], lambda e: e[0].sum())


@pytest.mark.parametrize(
    ("chunk", "expected", "first_pass"), [(5, [5, 3, 5, 5, 3, 5, 3, 5, 5], 5), (64, [8, 13, 8], 2)]
)
def test_last_chunk_is_encoded_once(chunk: int, expected: list[int], first_pass: int) -> None:
    model, loss_fn, sides = _setup("dense")
    model.train()
    calls = []

    def encoder(features):
        calls.append((features["input_ids"].shape[0], torch.is_grad_enabled()))
        return model(features)

    ref_loss, ref_grads, _ = _reference(model, loss_fn, sides, chunk, seed=4)
    _zero(model, loss_fn)
    torch.manual_seed(4)
    loss = GradCache(chunk).loss(encoder, sides, lambda e: loss_fn(e[0], e[1], TARGETS))
    # first pass: every chunk, the last one with a graph; replay: every chunk but the last
    assert [n for n, _ in calls] == expected
    assert [grad for _, grad in calls[:first_pass]] == [False] * (first_pass - 1) + [True]
    torch.testing.assert_close(loss, ref_loss, rtol=1e-12, atol=1e-12)
    for got, want in zip(_params(model, loss_fn), ref_grads):
        torch.testing.assert_close(got.grad, want, rtol=1e-10, atol=1e-12)
