"""Batches of example indices: shuffled per epoch, no duplicate text in a batch, resumable exactly.

In-batch contrastive objectives treat every other example's texts as
negatives, so two examples that share a text (the same anchor with two
positives, a positive that is another example's negative, a repeated
sentence) must not meet in one batch: one would be trained to push away its
own text. :class:`BatchSampler` builds each epoch's batches from a
permutation drawn from ``(seed, epoch)`` and greedily keeps such collisions
apart:

1. a new batch first takes the examples deferred earlier, oldest first, that
   fit (share no text with the batch so far);
2. then it takes the next examples of the permutation; one that collides is
   deferred to a later batch, never dropped.

Every example therefore lands in exactly one batch of the epoch. Batches are
full (``batch_size``) except at the end of the epoch, where the examples left
over (the last partial batch, and deferred examples that cannot fill a batch
without repeating a text) form smaller batches. ``drop_last=True`` (the
default, for objectives that want a fixed batch size) leaves those out of the
epoch; they are not lost silently: :meth:`BatchSampler.dropped` lists them,
and a warning is issued when duplicates made the sampler drop more than a
plain ``drop_last`` would (``len(examples) % batch_size``). Only texts shared
*between* examples count; an example whose own anchor equals its positive is
kept as is.

``duplicates`` chooses what happens to an example that collides, as
sentence-transformers' no-duplicates batch sampler offers:

* ``"defer"`` (the default, above): it waits for a later batch of the epoch;
* ``"skip"``: it sits out this epoch (listed by :meth:`BatchSampler.dropped`
  and :attr:`EpochPlan.skipped`); another epoch's permutation lets it in.
  Batches then follow the shuffled order exactly, with no example waiting
  (deferral piles a frequent question's rows up toward the epoch's end), at
  the cost of fewer examples per epoch on data with many answers per question
  (TREC-QA, batch 32: 192 of 348 examples per epoch, against 224 deferred).

Either way the count of examples left out of an epoch is reported (a warning
naming it, and :meth:`BatchSampler.dropped`). The sampler plans epoch 0 when
it is built, so data that cannot fill one duplicate-free batch is refused at
once (naming the largest batch it could fill and the most repeated text),
before a training run writes anything.

With ``length_grouped=True`` batches are formed from examples of similar
length, so less of each batch is padding: the epoch's permutation is cut into
mega-batches of ``mega_batches * batch_size`` examples, each mega-batch is
sorted by the examples' total text length (characters of anchor, positives
and negatives; longest first), packed as above, and then the order of the
epoch's full batches is shuffled (from ``(seed, epoch, 1)``). Batches stay
random in content and order, duplicate-free, and every example is still in
exactly one batch of the epoch.

The whole epoch is a pure function of ``(examples' texts, batch_size, seed,
epoch)`` and the options. Iterating yields one epoch and moves the position to the next
epoch; :meth:`state_dict` captures the exact position (epoch, next batch) so
a resumed run yields the identical next batch. :meth:`next_batch` hands out
one batch at a time across epoch boundaries (what the training loop and
:class:`~contrastkit.data.mixture.MixtureSampler` use). The position advances when a
batch is handed out: take the state after the step that consumed the batch
(not through a prefetching DataLoader, which runs ahead).

Cost: O(n) per epoch plus, per batch, a scan of at most ``window`` deferred
examples; data where one text recurs in a large share of the examples
(class names as positives) defers many examples and ends in many small
batches: use labels and a label-aware objective for such data instead.

Example::

    >>> from contrastkit.data import Example
    >>> data = [Example("a", ("x",)), Example("b", ("x",)), Example("c", ("y",)), Example("d", ("z",))]
    >>> sampler = BatchSampler(data, 2, seed=0, drop_last=False)
    >>> all(not ({0, 1} <= set(batch)) for batch in sampler)  # 0 and 1 share "x"
    True
"""

from __future__ import annotations

import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from contrastkit.data.examples import Example

Duplicates = Literal["defer", "skip"]


@dataclass(frozen=True)
class EpochPlan:
    """The batches of one epoch (lists of example indices); the indices left out of it (``dropped``: by
    ``drop_last`` and by ``duplicates="skip"``), and of those, the ones skipped for sharing a text."""

    batches: tuple[tuple[int, ...], ...]
    dropped: tuple[int, ...]
    skipped: tuple[int, ...] = ()


class BatchSampler:
    """Yields lists of example indices, one list per batch; see the module docstring.

    Args:
        examples: the examples (only their texts are read).
        batch_size: examples per batch (>= 1).
        seed: non-negative seed; epoch e's permutation comes from ``(seed, e)``.
        drop_last: leave out the epoch's final smaller batches (listed by :meth:`dropped`).
        window: at most this many deferred examples are tried per batch (default ``8 * batch_size``).
        length_grouped: form batches from examples of similar text length (see the module docstring).
        mega_batches: with ``length_grouped``, examples are sorted within groups of this many batches.
        duplicates: ``"defer"`` an example that shares a text with the batch to a later batch, or ``"skip"`` it
            for the epoch (see the module docstring).

    Raises:
        ValueError: bad settings, or (``drop_last``) data that cannot fill one batch without a repeated text.
    """

    def __init__(
        self,
        examples: Sequence[Example],
        batch_size: int,
        *,
        seed: int,
        drop_last: bool = True,
        window: int | None = None,
        length_grouped: bool = False,
        mega_batches: int = 50,
        duplicates: Duplicates = "defer",
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        if not examples:
            raise ValueError("BatchSampler: no examples")
        if mega_batches < 1:
            raise ValueError(f"mega_batches must be >= 1, got {mega_batches}")
        if duplicates not in ("defer", "skip"):
            raise ValueError(f"duplicates must be 'defer' or 'skip', got {duplicates!r}")
        if drop_last and len(examples) < batch_size:
            raise ValueError(f"{len(examples)} examples < batch_size {batch_size} with drop_last=True: no batch")
        self.examples = examples
        self.batch_size = batch_size
        self.seed = seed
        self.drop_last = drop_last
        self.window = 8 * batch_size if window is None else max(1, window)
        self.length_grouped = length_grouped
        self.mega_batches = mega_batches
        self.duplicates = duplicates
        self._lengths: list[int] | None = None
        self._epoch = 0
        self._batch = 0
        self._plan: tuple[int, EpochPlan] | None = None
        self.plan(0)  # refuse data that cannot fill a batch now, before a run writes anything

    # ------------------------------------------------------------------ position
    @property
    def epoch(self) -> int:
        """The epoch the next batch comes from."""
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Move to the start of ``epoch``."""
        self._epoch, self._batch = int(epoch), 0

    def state_dict(self) -> dict[str, Any]:
        """The position (epoch, index of the next batch) and the settings it is valid for."""
        return {
            "epoch": self._epoch,
            "batch": self._batch,
            "seed": self.seed,
            "batch_size": self.batch_size,
            "drop_last": self.drop_last,
            "window": self.window,
            "num_examples": len(self.examples),
            "length_grouped": self.length_grouped,
            "mega_batches": self.mega_batches,
            "duplicates": self.duplicates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume at ``state``'s position; ValueError if it was saved with other settings or data size."""
        mine = self.state_dict()
        saved = {"length_grouped": False, "mega_batches": 50, "duplicates": "defer", **state}  # older states
        keys = ("seed", "batch_size", "drop_last", "window", "num_examples", "length_grouped", "mega_batches")
        for key in (*keys, "duplicates"):
            if saved.get(key) != mine[key]:
                raise ValueError(
                    f"sampler state was saved with {key}={saved.get(key)!r}, this sampler has {mine[key]!r}"
                )
        self._epoch, self._batch = int(state["epoch"]), int(state["batch"])

    # ------------------------------------------------------------------ batches
    def __len__(self) -> int:
        """Number of batches in the current epoch."""
        return len(self.plan(self._epoch).batches)

    def __iter__(self) -> Iterator[list[int]]:
        """The current epoch's batches from the saved position on; afterwards the position is the next epoch."""
        epoch, start = self._epoch, self._batch
        batches = self.plan(epoch).batches
        if start >= len(batches):
            self._epoch, self._batch = epoch + 1, 0
        for b in range(start, len(batches)):
            last = b + 1 == len(batches)
            self._epoch, self._batch = (epoch + 1, 0) if last else (epoch, b + 1)
            yield list(batches[b])

    def next_batch(self) -> list[int]:
        """The batch at the current position, moving on (into the next epoch after an epoch's last batch)."""
        batches = self.plan(self._epoch).batches
        if self._batch >= len(batches):
            self._epoch, self._batch = self._epoch + 1, 0
            batches = self.plan(self._epoch).batches
            if not batches:
                raise RuntimeError(f"BatchSampler epoch {self._epoch} has no batch")
        batch = batches[self._batch]
        last = self._batch + 1 == len(batches)
        self._epoch, self._batch = (self._epoch + 1, 0) if last else (self._epoch, self._batch + 1)
        return list(batch)

    def num_batches(self, epoch: int) -> int:
        """The number of batches of ``epoch``."""
        return len(self.plan(epoch).batches)

    def dropped(self, epoch: int | None = None) -> list[int]:
        """Indices of the examples ``drop_last`` left out of ``epoch`` (default: the current one)."""
        return list(self.plan(self._epoch if epoch is None else epoch).dropped)

    def plan(self, epoch: int) -> EpochPlan:
        """Every batch of ``epoch`` (cached for the last epoch asked)."""
        if self._plan is None or self._plan[0] != epoch:
            self._plan = (epoch, self._build(epoch))
        return self._plan[1]

    def _build(self, epoch: int) -> EpochPlan:
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.examples)).tolist()
        if self.length_grouped:
            order = _by_length(order, self._text_lengths(), self.mega_batches * self.batch_size)
        texts = [ex.texts() for ex in self.examples]
        full, partial, skipped = _pack(order, texts, self.batch_size, self.window, defer=self.duplicates == "defer")
        if self.length_grouped:
            shuffled = np.random.default_rng([self.seed, epoch, 1]).permutation(len(full)).tolist()
            full = [full[i] for i in shuffled]
        if not self.drop_last:
            plan = EpochPlan(tuple(full + partial), tuple(skipped), tuple(skipped))
        else:
            if not full:
                raise ValueError(self._no_batch(epoch, texts, partial))
            plan = EpochPlan(tuple(full), (*skipped, *(i for batch in partial for i in batch)), tuple(skipped))
        if len(plan.dropped) > (len(order) % self.batch_size if self.drop_last else 0):
            warnings.warn(self._left_out(epoch, plan), stacklevel=4)
        return plan

    def _left_out(self, epoch: int, plan: EpochPlan) -> str:
        """The warning for an epoch that leaves out more examples than a plain ``drop_last`` split would."""
        n, size = len(self.examples), self.batch_size
        parts = []
        if plan.skipped:
            parts.append(f"{len(plan.skipped)} skipped for sharing a text with their batch (duplicates=skip)")
        rest = len(plan.dropped) - len(plan.skipped)
        if rest:
            parts.append(f"{rest} left over by drop_last (an unconstrained split leaves {n % size})")
        return (
            f"BatchSampler epoch {epoch}: {len(plan.dropped)} of {n} examples left out of the epoch because texts "
            f"repeat across examples: {'; '.join(parts)}; see BatchSampler.dropped()"
        )

    def _no_batch(self, epoch: int, texts: list[tuple[str, ...]], partial: list[tuple[int, ...]]) -> str:
        """The error for data with no full duplicate-free batch: the largest batch found, the most repeated text."""
        counts: dict[str, int] = {}
        for example in texts:
            for text in set(example):
                counts[text] = counts.get(text, 0) + 1
        top = max(counts, key=lambda t: counts[t])
        largest = max((len(b) for b in partial), default=0)
        shown = top if len(top) <= 60 else top[:57] + "..."
        return (
            f"no batch of {self.batch_size} examples without a repeated text in epoch {epoch}: the largest "
            f"duplicate-free batch found has {largest} examples ({len(counts)} distinct texts in {len(texts)} "
            f"examples; {shown!r} is in {counts[top]} of them); use a batch size of at most {largest}, "
            "deduplicate the data, or drop_last=False"
        )

    def _text_lengths(self) -> list[int]:
        if self._lengths is None:
            self._lengths = [sum(len(t) for t in ex.texts()) for ex in self.examples]
        return self._lengths


def _by_length(order: list[int], lengths: list[int], group: int) -> list[int]:
    """``order`` with each consecutive group of ``group`` indices sorted by length, longest first (stable)."""
    out: list[int] = []
    for start in range(0, len(order), group):
        out += sorted(order[start : start + group], key=lambda i: -lengths[i])
    return out


def _pack(
    order: list[int], texts: list[tuple[str, ...]], size: int, window: int, *, defer: bool = True
) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]], list[int]]:
    """Greedy batches of ``order`` with no text shared between two examples of a batch: (full, partial,
    skipped); a colliding example is deferred to a later batch, or skipped (``defer=False``)."""
    full: list[tuple[int, ...]] = []
    partial: list[tuple[int, ...]] = []
    skipped: list[int] = []
    deferred: deque[int] = deque()
    upcoming = iter(order)
    exhausted = False
    while deferred or not exhausted:
        batch: list[int] = []
        seen: set[str] = set()
        kept: list[int] = []
        for _ in range(min(window, len(deferred))):
            if len(batch) == size:
                break
            i = deferred.popleft()
            if not _take(i, texts[i], batch, seen):
                kept.append(i)
        deferred.extendleft(reversed(kept))
        while len(batch) < size and not exhausted:
            following = next(upcoming, None)
            if following is None:
                exhausted = True
            elif not _take(following, texts[following], batch, seen):
                (deferred if defer else skipped).append(following)
        if batch:
            (full if len(batch) == size else partial).append(tuple(batch))
    return full, partial, skipped


def _take(index: int, texts: tuple[str, ...], batch: list[int], seen: set[str]) -> bool:
    """Add ``index`` to ``batch`` unless one of its texts is already there; whether it was added."""
    if not seen.isdisjoint(texts):
        return False
    batch.append(index)
    seen.update(texts)
    return True
