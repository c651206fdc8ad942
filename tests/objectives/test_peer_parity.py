"""Parity with sentence-transformers' own loss code: loss and gradients equal in float64 on seeded inputs.

sentence-transformers is a dependency, so these comparisons run in CI:
MultipleNegativesRankingLoss (pairs, hard negatives, symmetric), CoSENTLoss,
MatryoshkaLoss and CachedMultipleNegativesRankingLoss. Where the peer loss
needs a model, a row table stands in for it (``_TableModel``: features
``input_ids`` (n, 1) name table rows), so both sides differentiate the same
parameters and nothing is downloaded.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from sentence_transformers.sentence_transformer.losses import (
    CachedMultipleNegativesRankingLoss,
    CoSENTLoss,
    MatryoshkaLoss,
    MultipleNegativesRankingLoss,
)
from torch import Tensor, nn

from contrastkit import ContrastiveLoss, Targets
from contrastkit.objectives import get
from contrastkit.scale.gradcache import GradCache
from contrastkit.scale.matryoshka import MatryoshkaLoss as CKMatryoshka

RTOL, ATOL = 1e-12, 1e-14
SCALE = 20.0  # sentence-transformers' default; temperature 1 / 20


def _leaves(*shape: int, seed: int) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen, dtype=torch.float64).requires_grad_()


def _grads(loss: Tensor, inputs: list[Tensor]) -> list[Tensor]:
    return list(torch.autograd.grad(loss, inputs))


def _assert_same(ours: Tensor, peer: Tensor, ours_grads: list[Tensor], peer_grads: list[Tensor]) -> None:
    torch.testing.assert_close(ours.detach(), peer.detach(), rtol=RTOL, atol=ATOL)
    for mine, theirs in zip(ours_grads, peer_grads, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-10, atol=ATOL)


class _TableModel(nn.Module):
    """A stand-in SentenceTransformer: ``input_ids`` (n, 1) pick rows of one float64 embedding table."""

    def __init__(self, rows: int, dim: int, seed: int) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.table = nn.Parameter(torch.randn(rows, dim, generator=gen, dtype=torch.float64))

    def forward(self, features: dict[str, Tensor]) -> dict[str, Tensor]:
        return {**features, "sentence_embedding": self.table[features["input_ids"][:, 0]]}

    def embed(self, features: dict[str, Tensor]) -> Tensor:
        return self(features)["sentence_embedding"]

    def __getitem__(self, index: int) -> nn.Module:  # the module list's first module (checked for StaticEmbedding)
        return self

    def get_embedding_dimension(self) -> int:
        return self.table.shape[1]

    def _get_untruncated_embedding_dimension(self) -> int:
        return self.table.shape[1]


def _columns(n: int, k: int) -> list[dict[str, Tensor]]:
    """``k`` feature columns of ``n`` rows each: column j holds table rows ``j*n .. j*n + n - 1``."""
    ones = torch.ones(n, 1, dtype=torch.long)
    return [{"input_ids": torch.arange(j * n, (j + 1) * n)[:, None], "attention_mask": ones} for j in range(k)]


@pytest.mark.parametrize("negatives", [0, 2])
@pytest.mark.parametrize("tile_size", [None, 3])
def test_mnrl_equals_infonce(negatives, tile_size) -> None:
    n, d = 7, 5
    q, *docs = (_leaves(n, d, seed=s) for s in range(2 + negatives))
    peer = MultipleNegativesRankingLoss(model=None, scale=SCALE).compute_loss_from_embeddings([q, *docs], None)
    candidates = torch.cat(docs)
    targets = Targets.from_index(torch.arange(n), num_cols=len(candidates))
    ours = ContrastiveLoss("infonce", temperature=1 / SCALE, tile_size=tile_size)(q, candidates, targets)
    leaves = [q, *docs]
    _assert_same(ours, peer, _grads(ours, leaves), _grads(peer, leaves))


@pytest.mark.parametrize("tile_size", [None, 2])
def test_symmetric_mnrl_equals_clip_at_a_fixed_temperature(tile_size) -> None:
    n, d = 6, 4
    q, p = _leaves(n, d, seed=10), _leaves(n, d, seed=11)
    peer_loss = MultipleNegativesRankingLoss(
        model=None, scale=SCALE, directions=("query_to_doc", "doc_to_query"), partition_mode="per_direction"
    )
    peer = peer_loss.compute_loss_from_embeddings([q, p], None)
    ours_loss = ContrastiveLoss("clip", temperature=1 / SCALE, learnable_temperature=False, tile_size=tile_size)
    ours = ours_loss(q, p, Targets.diagonal(n))
    _assert_same(ours, peer, _grads(ours, [q, p]), _grads(peer, [q, p]))


@pytest.mark.parametrize("ties", [False, True])
def test_cosent_equals_cosent_loss(ties) -> None:
    n, d = 9, 6
    a, b = _leaves(n, d, seed=20), _leaves(n, d, seed=21)
    gen = torch.Generator().manual_seed(22)
    gold = torch.randint(0, 4, (n,), generator=gen) if ties else torch.rand(n, generator=gen, dtype=torch.float64)
    gold = gold.to(torch.float64)
    peer = CoSENTLoss(model=None, scale=SCALE).compute_loss_from_embeddings([a, b], gold)
    ours = get("cosent", temperature=1 / SCALE)(F.cosine_similarity(a, b, dim=-1), gold)
    _assert_same(ours, peer, _grads(ours, [a, b]), _grads(peer, [a, b]))


def test_matryoshka_equals_matryoshka_loss() -> None:
    n, dims, weights = 6, [8, 4, 2], [1.0, 0.5, 0.25]
    peer_model, our_model = _TableModel(3 * n, 8, seed=30), _TableModel(3 * n, 8, seed=30)
    features = _columns(n, 3)  # anchor, positive, hard negative
    mnrl = MultipleNegativesRankingLoss(peer_model, scale=SCALE)
    peer = MatryoshkaLoss(peer_model, mnrl, matryoshka_dims=dims, matryoshka_weights=weights)(features, None)
    peer.backward()
    q, p, neg = (our_model.embed(f) for f in features)
    targets = Targets.from_index(torch.arange(n), num_cols=2 * n)
    ours_loss = CKMatryoshka(ContrastiveLoss("infonce", temperature=1 / SCALE), dims=dims, weights=weights)
    ours = ours_loss(q, torch.cat([p, neg]), targets)
    ours.backward()
    torch.testing.assert_close(ours.detach(), peer.detach(), rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(our_model.table.grad, peer_model.table.grad, rtol=1e-10, atol=ATOL)


@pytest.mark.parametrize("chunk", [1, 3, 8])
def test_gradcache_equals_cached_mnrl(chunk) -> None:
    n = 8
    peer_model, our_model = _TableModel(3 * n, 5, seed=40), _TableModel(3 * n, 5, seed=40)
    features = _columns(n, 3)
    peer_loss = CachedMultipleNegativesRankingLoss(peer_model, scale=SCALE, mini_batch_size=chunk)
    peer = peer_loss(features, None)
    peer.backward()
    targets = Targets.from_index(torch.arange(n), num_cols=2 * n)
    loss_fn = ContrastiveLoss("infonce", temperature=1 / SCALE)
    ours = GradCache(chunk).loss(our_model.embed, features, lambda e: loss_fn(e[0], torch.cat(e[1:]), targets))
    torch.testing.assert_close(ours, peer.detach(), rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(our_model.table.grad, peer_model.table.grad, rtol=1e-10, atol=ATOL)
