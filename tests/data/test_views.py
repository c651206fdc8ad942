"""Views for unsupervised training: determinism by seed and each view's invariants."""

from __future__ import annotations

import random
from collections import Counter

import pytest
import torch

from contrastkit import objectives
from contrastkit.data.examples import Batch, Example
from contrastkit.data.laser import LaserViews
from contrastkit.data.views import (
    augment,
    deleted_count,
    dropout_examples,
    example_rng,
    identity,
    propensity_examples,
    span_cutoff,
    view_columns,
    whitened_views,
    with_ratio,
    word_deletion,
    word_shuffle,
)
from contrastkit.encoders.base import Encoder
from contrastkit.objectives import multiview  # noqa: F401  (registers mv_*)
from contrastkit.objectives.hooks import PropensitySampler
from contrastkit.objectives.whitened import WhitenedCSE, shuffled_group_whitening
from contrastkit.training.batchloss import BatchLoss
from contrastkit.training.config import ObjectiveConfig, ScaleConfig

SENTENCES = [
    "the quick brown fox jumps over the lazy dog near the river bank",
    "a b c d e f g h i j k l m n o p q r s t",
    "one",
    "",
    "contrastive learning pulls views of the same sentence together",
]
VIEWS = [
    identity,
    word_shuffle,
    word_deletion,
    span_cutoff,
    with_ratio(word_deletion, 0.3),
    with_ratio(span_cutoff, 0.5),
]


def _is_subsequence(small: list[str], big: list[str]) -> bool:
    it = iter(big)
    return all(any(x == y for y in it) for x in small)


@pytest.mark.parametrize("view", VIEWS, ids=lambda v: v.__name__)
def test_every_view_is_deterministic_by_seed(view):
    a = augment(SENTENCES, [view, view], seed=3)
    b = augment(SENTENCES, [view, view], seed=3)
    assert a == b
    # a view depends on (seed, index, text) only, not on the other sentences
    assert (
        augment(["x", SENTENCES[1]], [view, view], seed=3)[1] == augment(["y z", SENTENCES[1]], [view, view], seed=3)[1]
    )
    assert a[1] == augment(["other", SENTENCES[1]], [view, view], seed=3)[1]
    assert view(SENTENCES[0], example_rng(7, 0)) == view(SENTENCES[0], example_rng(7, 0))


def test_seed_changes_random_views():
    long = [f"w{i}" for i in range(30)]
    text = " ".join(long)
    outs = {augment([text], [word_shuffle, word_deletion, span_cutoff], seed=s)[0].positives for s in range(5)}
    assert len(outs) == 5


def test_shuffle_keeps_the_multiset_of_words():
    for i, text in enumerate(SENTENCES):
        for seed in range(20):
            out = word_shuffle(text, example_rng(seed, i))
            assert Counter(out.split()) == Counter(text.split())
    text = SENTENCES[1]
    assert any(word_shuffle(text, example_rng(s, 0)) != text for s in range(3))


@pytest.mark.parametrize("ratio", [0.0, 0.1, 0.25, 0.5, 0.9])
def test_deletion_keeps_order_and_the_ratio(ratio):
    for i, text in enumerate(SENTENCES):
        w = text.split()
        for seed in range(10):
            out = word_deletion(text, example_rng(seed, i), ratio).split()
            assert len(out) == len(w) - deleted_count(len(w), ratio)
            assert _is_subsequence(out, w)
            assert len(w) == 0 or len(out) >= 1


@pytest.mark.parametrize("ratio", [0.0, 0.1, 0.3, 0.9])
def test_span_cutoff_removes_one_contiguous_span(ratio):
    w = [f"t{i}" for i in range(20)]
    k = deleted_count(20, ratio)
    starts = set()
    for seed in range(30):
        out = span_cutoff(" ".join(w), example_rng(seed, 0), ratio).split()
        start = next((j for j in range(len(out)) if out[j] != w[j]), len(out))
        assert out == w[:start] + w[start + k :]
        starts.add(start)
    assert len(starts) > 1 or k in (0,)


def test_deleted_count_rounds_half_up_and_keeps_a_word():
    assert [deleted_count(n, 0.1) for n in (0, 1, 4, 5, 14, 15, 25)] == [0, 0, 0, 1, 1, 2, 3]
    assert deleted_count(3, 0.9) == 2
    with pytest.raises(ValueError):
        deleted_count(5, 1.0)
    with pytest.raises(ValueError):
        with_ratio(word_deletion, -0.1)


def test_augment_layout_matches_view_objectives():
    ex = augment(SENTENCES, [word_shuffle, identity, word_deletion], seed=0)
    assert all(e.anchor == t and len(e.texts()) == 4 for e, t in zip(ex, SENTENCES, strict=True))
    assert all(e.positives[1] == e.anchor for e in ex)
    assert len({len(e.texts()) for e in ex}) == 1  # the trainer's view path needs equal counts


def test_dropout_examples():
    two = dropout_examples(SENTENCES)
    assert all(e.texts() == (t,) for e, t in zip(two, SENTENCES, strict=True))  # trainer makes 2 dropout views
    three = dropout_examples(SENTENCES, num_views=3)
    assert all(e.texts() == (t, t, t) for e, t in zip(three, SENTENCES, strict=True))
    with pytest.raises(ValueError):
        dropout_examples(SENTENCES, num_views=1)


def test_whitened_views_reuse_sgw_and_match_whitenedcse():
    x = torch.randn(3, 24, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    out = whitened_views(x, groups=2, generator=torch.Generator().manual_seed(5))
    again = whitened_views(x, groups=2, generator=torch.Generator().manual_seed(5))
    assert torch.equal(out, again)
    ref = WhitenedCSE(groups=2).whiten(x, torch.Generator().manual_seed(5))
    torch.testing.assert_close(out, ref)
    g = torch.Generator().manual_seed(5)
    perms = [torch.randperm(8, generator=g) for _ in range(3)]
    for v in range(3):
        torch.testing.assert_close(out[v], shuffled_group_whitening(x[v], 2, permutation=perms[v]))
        # each group of the whitened view has (near) identity covariance
        for group in perms[v].reshape(2, 4):
            z = out[v][:, group]
            torch.testing.assert_close(z.T @ z / 24, torch.eye(4, dtype=torch.float64), atol=1e-3, rtol=0)
    assert not torch.allclose(out[0], out[1])  # different shuffles make different views
    with pytest.raises(ValueError):
        whitened_views(x[0], groups=2)


def test_propensity_examples_follow_the_sampler_and_pools():
    texts = [f"sentence {i}" for i in range(6)]
    prop = torch.rand(6, 6, generator=torch.Generator().manual_seed(1)) + 0.1
    sampler = PropensitySampler(lambda ids: prop[ids])
    pos = torch.zeros(6, 6, dtype=torch.bool)
    for i in range(6):
        pos[i, i ^ 1] = True  # pairs (0,1), (2,3), (4,5)
    neg = ~pos
    neg[5] = False  # text 5 has no eligible negative: skipped
    ex = propensity_examples(texts, sampler, pos, neg, seed=4)
    assert ex == propensity_examples(texts, sampler, pos, neg, seed=4)
    assert [e.source for e in ex] == ["0", "1", "2", "3", "4"]
    trip = sampler.sample(torch.arange(6), pos, neg, generator=torch.Generator().manual_seed(4))
    for e, a, p, n in zip(ex, trip.anchor.tolist(), trip.positive.tolist(), trip.negative.tolist(), strict=True):
        assert (e.anchor, e.positives, e.negatives) == (texts[a], (texts[p],), (texts[n],))
        assert pos[a, p] and neg[a, n] and n != a
    assert len(Batch(tuple(ex)).candidates) == 10
    with pytest.raises(ValueError):
        propensity_examples(texts[:5], sampler, pos, neg)


def test_views_accept_any_random_instance():
    rng = random.Random(0)
    assert sorted(word_shuffle("b a c", rng).split()) == ["a", "b", "c"]


class _BagEncoder(Encoder):
    """Trainable bag of hashed words with dropout: enough to run the trainer's loss on view examples."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.bag = torch.nn.EmbeddingBag(101, 8, mode="mean")
        self.drop = torch.nn.Dropout(0.1)

    @property
    def dim(self) -> int:
        return 8

    def tokenize(self, texts, *, prompt=None):
        rows = [[sum(map(ord, w)) % 101 for w in ((prompt or "") + t).split()] or [0] for t in texts]
        width = max(len(r) for r in rows)
        return {"ids": torch.tensor([r + r[:1] * (width - len(r)) for r in rows])}

    def forward(self, features):
        return torch.nn.functional.normalize(self.drop(self.bag(features["ids"])), dim=-1)


@pytest.mark.parametrize(
    ("objective", "make"),
    [
        ("simcse", lambda t: dropout_examples(t)),
        ("infonce", lambda t: LaserViews()(t)),
        ("simcse_sup", lambda t: augment(t, [word_shuffle], seed=0)),
    ],
)
def test_view_examples_train_through_the_batch_loss(objective, make):
    texts = [f"sentence number {i} about topic {i % 3} and more words" for i in range(8)]
    examples = make(texts)
    if objective == "simcse_sup":  # anchor, positive, hard negative
        examples = [Example(e.anchor, e.positives, (texts[(i + 1) % 8],)) for i, e in enumerate(examples)]
    encoder = _BagEncoder()
    loss = BatchLoss(ObjectiveConfig(name=objective), ScaleConfig(), dim=8)
    loss.check_examples(examples)
    value = loss(encoder, encoder, Batch(tuple(examples)))
    assert torch.isfinite(value) and encoder.bag.weight.grad is not None


@pytest.mark.parametrize("objective", ["mv_infonce", "mv_dhel"])
def test_view_columns_feed_multi_view_objectives(objective):
    texts = [f"sentence number {i} about topic {i % 3}" for i in range(6)]
    examples = augment(texts, [word_shuffle, word_deletion, identity], seed=0)
    columns = view_columns(examples)
    assert len(columns) == 4 and columns[0] == texts and columns[3] == texts
    assert view_columns(dropout_examples(texts)) == [texts, texts]
    encoder = _BagEncoder()
    views = torch.stack([encoder(encoder.tokenize(c)) for c in columns])  # (V, n, d)
    value = objectives.get(objective)(views)
    value.backward()
    assert torch.isfinite(value) and encoder.bag.weight.grad is not None
    with pytest.raises(ValueError):
        view_columns([*examples, Example("lonely")])
