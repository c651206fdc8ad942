"""MatryoshkaLoss: the weighted sum of the loss at each truncated size, cosine re-normalised per prefix."""

import math

import pytest
import torch

from contrastkit import ContrastiveLoss, Targets
from contrastkit.scale.matryoshka import MatryoshkaLoss, truncate

N, D = 6, 10
DIMS, WEIGHTS = [10, 6, 2], [1.0, 0.5, 2.0]


def _oracle_infonce(a: list[list[float]], c: list[list[float]], tau: float) -> float:
    """Float64 loop InfoNCE with diagonal positives on cosine similarities."""

    def unit(v):
        norm = math.sqrt(sum(x * x for x in v))
        return [x / norm for x in v]

    a, c = [unit(v) for v in a], [unit(v) for v in c]
    total = 0.0
    for i, ai in enumerate(a):
        logits = [sum(x * y for x, y in zip(ai, cj)) / tau for cj in c]
        m = max(logits)
        lse = m + math.log(sum(math.exp(v - m) for v in logits))
        total += lse - logits[i]
    return total / len(a)


def _inputs(seed: int):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(N, D, generator=g, dtype=torch.float64, requires_grad=True)
    c = torch.randn(N, D, generator=g, dtype=torch.float64, requires_grad=True)
    return a, c


def test_value_matches_loop_oracle_with_renormalised_prefixes() -> None:
    a, c = _inputs(0)
    loss = MatryoshkaLoss(ContrastiveLoss("infonce", temperature=0.3), DIMS, WEIGHTS)(a, c, Targets.diagonal(N))
    want = sum(
        w * _oracle_infonce(a[:, :m].tolist(), c[:, :m].tolist(), 0.3) for m, w in zip(DIMS, WEIGHTS, strict=True)
    )
    assert math.isclose(float(loss.detach()), want, rel_tol=1e-12)


@pytest.mark.parametrize("tile_size", [None, 4])
def test_gradients_equal_the_explicit_weighted_sum(tile_size) -> None:
    a, c = _inputs(1)
    inner = ContrastiveLoss("infonce", temperature=0.3, learnable_temperature=True, tile_size=tile_size)
    mrl = MatryoshkaLoss(inner, DIMS, WEIGHTS)
    targets = Targets.from_lists(torch.tensor([[0, 1], [1, -1], [-1, -1], [3, 5], [4, -1], [5, 0]]), num_cols=N)
    temp = next(mrl.parameters())  # the inner learnable temperature belongs to the wrapper
    got = torch.autograd.grad(mrl(a, c, targets), [a, c, temp])
    explicit = sum(w * inner(a[:, :m], c[:, :m], targets) for m, w in zip(DIMS, WEIGHTS, strict=True))
    want = torch.autograd.grad(explicit, [a, c, temp])
    for x, y in zip(got, want):
        torch.testing.assert_close(x, y, rtol=1e-12, atol=1e-14)
    # each prefix really is re-normalised: a full-size unit vector gives the same loss as its truncation re-normalised
    unit = torch.nn.functional.normalize(a.detach(), dim=-1)
    at2 = MatryoshkaLoss(inner, [2])(unit, c.detach(), targets)
    manual = inner(torch.nn.functional.normalize(unit[:, :2], dim=-1), c.detach()[:, :2], targets)
    torch.testing.assert_close(at2, manual, rtol=1e-12, atol=0)


def test_views_and_labels_pass_through() -> None:
    g = torch.Generator().manual_seed(2)
    views = torch.randn(2, N, D, generator=g, dtype=torch.float64)
    inner = ContrastiveLoss("ntxent", temperature=0.5)
    got = MatryoshkaLoss(inner, [8, 3])(views)
    torch.testing.assert_close(got, inner(views[..., :8]) + inner(views[..., :3]), rtol=1e-12, atol=0)

    seen = []
    labels = torch.arange(N)
    MatryoshkaLoss(lambda x, y: seen.append((x.shape, y)) or x.sum(), [4, 2], embeddings=(0,))(views, labels)
    assert [s[0] for s in seen] == [(2, N, 4), (2, N, 2)]
    assert all(s[1] is labels for s in seen)
    with pytest.raises(TypeError, match="embedding argument"):
        truncate(labels, 3)


def test_only_the_named_embedding_arguments_are_truncated() -> None:
    """A float (n, K) multi-label target beside the embeddings is passed whole (it was truncated when the
    embeddings were guessed by dtype and rank)."""
    a, c = torch.randn(N, 8, dtype=torch.float64), torch.randn(N, 8, dtype=torch.float64)
    soft = torch.rand(N, 6, dtype=torch.float64)
    seen = []
    MatryoshkaLoss(lambda x, y, t: seen.append((x.shape[-1], y.shape[-1], t.shape)) or x.sum(), [8, 4])(a, c, soft)
    assert seen == [(8, 8, (N, 6)), (4, 4, (N, 6))]


def test_validation() -> None:
    loss = ContrastiveLoss("infonce")
    with pytest.raises(ValueError, match="distinct"):
        MatryoshkaLoss(loss, [4, 4])
    with pytest.raises(ValueError, match="distinct"):
        MatryoshkaLoss(loss, [])
    with pytest.raises(ValueError, match="weights"):
        MatryoshkaLoss(loss, [4, 2], [1.0])
    with pytest.raises(ValueError, match="finite"):
        MatryoshkaLoss(loss, [4], [-1.0])
    with pytest.raises(ValueError, match="exceeds"):
        MatryoshkaLoss(loss, [D + 1])(torch.randn(3, D), torch.randn(3, D), Targets.diagonal(3))
