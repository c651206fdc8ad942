"""Views for unsupervised training: seeded text transforms that turn sentences into :class:`Example` records.

A *view transform* is a pure function ``view(text, rng) -> text`` of a text
and a ``random.Random``; :func:`augment` applies a list of them to every
sentence and returns one :class:`Example` per sentence, anchor = the sentence,
positives = its views in order. The training loop's view objectives
(``simcse``, ``ntxent``, ``simcse_sup``, ``supcon``, ...) take
``Example.texts()`` as the views (view 0 = the anchor), so
``augment(texts, [word_shuffle, word_deletion])`` gives V = 3 views per
sentence. Matrix objectives (``infonce``) score each
anchor against the positives of the batch instead. Objectives the trainer
does not drive (``mv_infonce``, ``mv_dhel``, ``whitenedcse``: plain
objectives on (V, n, d)) get their views from :func:`view_columns`.

Determinism: example ``i`` draws from ``random.Random(f"{seed}/{i}")``, so a
view depends only on (seed, index, text), not on batching or on the other
sentences. Transforms work on **words** (whitespace split, joined by one
space), not on subword ids: the encoder's tokenizer sees ordinary text, and
the same view serves every tokenizer. ConSERT's token cutoff zeroes
embedding rows inside the model; its text-level counterpart here is
:func:`span_cutoff` (a contiguous span of words removed). Ratios (0.1) are
our defaults: the specifications state none.

* **Dropout views (SimCSE)**: no transform. An anchor-only ``Example`` (see
  :func:`dropout_examples`) is encoded twice by the trainer, and the two
  passes differ by dropout; ``augment(texts, [identity] * (V - 1))`` gives V
  dropout views for multi-view objectives.
* **WhitenedCSE**: the views are ``num_pos`` dropout passes; the shuffled
  group whitening acts on their encodings (:func:`whitened_views`, a thin
  wrapper of :func:`contrastkit.objectives.whitened.shuffled_group_whitening`).
* **DebCSE**: :func:`propensity_examples` builds (anchor, positive, hard
  negative) examples for ``simcse_sup`` from a
  :class:`contrastkit.objectives.hooks.PropensitySampler` (pluggable
  propensity model; no reference formula is claimed).
* **LA(SER)^3** length-agnostic self-reference views live in
  :mod:`contrastkit.data.laser`.

Example::

    >>> texts = ["a cat sat on the mat", "dogs bark at night"]
    >>> ex = augment(texts, [word_shuffle], seed=0)
    >>> sorted(ex[0].positives[0].split()) == sorted(texts[0].split())
    True
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence

import torch
from torch import Generator, Tensor

from contrastkit.data.examples import Example
from contrastkit.objectives.hooks import PropensitySampler
from contrastkit.objectives.whitened import shuffled_group_whitening

ViewTransform = Callable[[str, random.Random], str]
"""``view(text, rng) -> text``: a pure transform; all randomness from ``rng``."""


def example_rng(seed: int, index: int) -> random.Random:
    """The generator of example ``index`` under ``seed`` (string-seeded: stable across processes)."""
    return random.Random(f"{seed}/{index}")


def words(text: str) -> list[str]:
    """Whitespace words of ``text``."""
    return text.split()


def identity(text: str, rng: random.Random) -> str:
    """The text unchanged: a dropout view (the trainer's forward pass makes it differ)."""
    return text


def word_shuffle(text: str, rng: random.Random) -> str:
    """The words of ``text`` in a uniformly random order (same multiset of words)."""
    w = words(text)
    rng.shuffle(w)
    return " ".join(w)


def deleted_count(n: int, ratio: float) -> int:
    """Words removed from ``n`` at ``ratio``: ``round(ratio * n)`` (half up), at most ``n - 1`` (one word stays)."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"ratio must be in [0, 1), got {ratio}")
    return min(max(n - 1, 0), math.floor(ratio * n + 0.5))


def word_deletion(text: str, rng: random.Random, ratio: float = 0.1) -> str:
    """``text`` with ``deleted_count(n, ratio)`` words removed at random positions; the others keep their order."""
    w = words(text)
    drop = set(rng.sample(range(len(w)), deleted_count(len(w), ratio)))
    return " ".join(x for i, x in enumerate(w) if i not in drop)


def span_cutoff(text: str, rng: random.Random, ratio: float = 0.1) -> str:
    """``text`` without one contiguous span of ``deleted_count(n, ratio)`` words (uniform start); order kept."""
    w = words(text)
    k = deleted_count(len(w), ratio)
    start = rng.randrange(len(w) - k + 1) if w else 0
    return " ".join(w[:start] + w[start + k :])


def with_ratio(view: Callable[..., str], ratio: float) -> ViewTransform:
    """``view`` (``word_deletion`` or ``span_cutoff``) with a fixed ``ratio``."""
    deleted_count(1, ratio)  # validate now

    def transform(text: str, rng: random.Random) -> str:
        return view(text, rng, ratio)

    transform.__name__ = f"{getattr(view, '__name__', 'view')}_{ratio:g}"
    return transform


def augment(texts: Sequence[str], views: Sequence[ViewTransform], *, seed: int = 0) -> list[Example]:
    """One ``Example(anchor=text, positives=(view_1(text), ..., view_k(text)))`` per text.

    Views are drawn in order from :func:`example_rng` ``(seed, i)``. Every
    example has ``1 + len(views)`` texts, as view objectives require; with
    no views the examples are anchor-only (two dropout views in the trainer).
    """
    out = []
    for i, text in enumerate(texts):
        rng = example_rng(seed, i)
        out.append(Example(anchor=text, positives=tuple(view(text, rng) for view in views)))
    return out


def dropout_examples(texts: Sequence[str], *, num_views: int = 2) -> list[Example]:
    """Dropout views: anchor-only examples (``num_views = 2``) or the text repeated ``num_views`` times.

    The trainer encodes an anchor-only example twice (unsupervised SimCSE);
    for ``num_views > 2`` (multi-view objectives, WhitenedCSE's three passes)
    the example holds the text ``num_views`` times, each encoded separately.
    """
    if num_views < 2:
        raise ValueError(f"dropout_examples: num_views must be >= 2, got {num_views}")
    extra = 0 if num_views == 2 else num_views - 1
    return augment(texts, [identity] * extra)


def view_columns(examples: Sequence[Example]) -> list[list[str]]:
    """The V lists of n texts to encode as views (V, n, d), by the trainer's rule.

    View v is every example's ``texts()[v]``; anchor-only examples give two
    copies of the anchor (dropout views). For objectives the trainer does not
    drive (``mv_infonce``, ``mv_dhel``, ``whitenedcse``, ...): encode each
    column with dropout on and stack.
    """
    texts = [ex.texts() for ex in examples]
    counts = {len(t) for t in texts}
    if len(counts) > 1:
        raise ValueError(f"view_columns: every example needs the same number of texts, found {sorted(counts)}")
    if counts == {1}:
        texts = [(t[0], t[0]) for t in texts]
    return [list(column) for column in zip(*texts, strict=True)]


def whitened_views(
    views: Tensor,
    *,
    groups: int = 128,
    generator: Generator | None = None,
    eps: float = 1e-5,
    grad_through_whitening: bool = False,
) -> Tensor:
    """WhitenedCSE's views: shuffled group whitening of each encoding view (m, N, D), own statistics and permutation.

    ``views`` are m dropout passes of the same N sentences (e.g. from
    ``dropout_examples(texts, num_views=3)``); each is whitened by
    :func:`contrastkit.objectives.whitened.shuffled_group_whitening` with its
    own feature permutation drawn from ``generator``, in view order, so that
    the different shuffles make the positives. Same as
    ``WhitenedCSE(groups=...).whiten(views, generator)``.
    """
    if views.dim() != 3:
        raise ValueError(f"whitened_views: expected views of shape (m, N, D), got {tuple(views.shape)}")
    out = []
    for view in views:
        permutation = torch.randperm(view.shape[-1], generator=generator)
        out.append(
            shuffled_group_whitening(
                view, groups, eps=eps, grad_through_whitening=grad_through_whitening, permutation=permutation
            )
        )
    return torch.stack(out)


def propensity_examples(
    texts: Sequence[str],
    sampler: PropensitySampler,
    positive_pool: Tensor,
    negative_pool: Tensor,
    *,
    seed: int = 0,
) -> list[Example]:
    """DebCSE-style examples: one (anchor, positive, hard negative) :class:`Example` per eligible text.

    ``positive_pool`` and ``negative_pool`` (N, N) bool say which texts may be
    each text's positive / negative; ``sampler`` draws them by inverse
    propensity (its pluggable model, see
    :class:`contrastkit.objectives.hooks.PropensitySampler`) with a
    ``torch.Generator`` seeded by ``seed``. Texts with an empty pool are
    skipped. Train the result with ``simcse_sup`` (3 views) or ``debcse``;
    ``Example.source`` records the anchor's index.
    """
    n = len(texts)
    if positive_pool.shape != (n, n) or negative_pool.shape != (n, n):
        raise ValueError(f"propensity_examples: pools must be ({n}, {n}) bool masks over the texts")
    generator = torch.Generator().manual_seed(seed)
    trip = sampler.sample(torch.arange(n), positive_pool, negative_pool, generator=generator)
    return [
        Example(anchor=texts[a], positives=(texts[p],), negatives=(texts[q],), source=str(a))
        for a, p, q in zip(trip.anchor.tolist(), trip.positive.tolist(), trip.negative.tolist(), strict=True)
    ]
