"""Pixel Linguist's stage-0 perturbations and stage-1 ``wikispan`` pairs, as seeded view transforms and examples.

Specification: ``thesis-methods.md`` section 4 (Xiao et al., *Pixel Sentence
Representation Learning*, arXiv 2402.08183). Stage 0 aligns a sentence with a
perturbed copy of itself, one perturbation family per run (the runs' weights
are then averaged, :mod:`contrastkit.training.curriculum`); stage 1 aligns two
spans of the same document.

**Perturbations** are :data:`~contrastkit.data.views.ViewTransform` s
(``view(text, rng) -> text``), so :func:`contrastkit.data.views.augment`
takes them too. They work on whitespace words (joined by one space):

* :func:`typos` (ambiguity 1): for every word, one of four edits or none,
  each edit with probability ``rate`` (0.1), at most one edit per word:
  insert a random lowercase letter, delete a character, substitute a
  character by a different letter, swap two adjacent characters. Deletion
  and swap need two characters; on one-character words they leave it as it
  is.
* ``shuffle``: :func:`contrastkit.data.views.word_shuffle`, every word
  order equally likely.
* :func:`conditional_shuffle` (ambiguity 2: every clause): clauses end at a
  word ending in ``, ; : . ! ?``; inside each clause the first and last word
  stay and the words between are shuffled.
* :func:`words_and_chars`: ``shuffle`` then :func:`typos` (our reading of
  "words and characters combined": the word-level family, then the
  character-level one).

:func:`perturbed_pairs` turns sentences into ``Example(anchor=s,
positives=(perturbed s,))``.

**Wikispan** (ambiguity 3): :func:`wikispan_pairs` cuts texts into
*documents* and draws, from each document of at least ``2 * min_words``
words, two disjoint spans of ``min_words``..``max_words`` words (5..64)
as (anchor, positive). For a sentence-per-line file (``wiki1m``) a document
is a window of ``doc_lines`` consecutive lines (non-overlapping, never
across two files); ``doc_lines=1`` makes every line a document (a file of
one article per line). wiki1m's neighbouring lines are not guaranteed to
come from one article, so there the spans are an approximation of
same-article pairs.

Determinism: example ``i`` (sentence or document ``i``) draws from
:func:`contrastkit.data.views.example_rng` ``(seed, i)``, as
:func:`~contrastkit.data.views.augment` does: a pair depends only on the
seed, its index and its text.

Example::

    >>> import random
    >>> typos("the cat sat on the mat", random.Random(3), rate=0.25) != "the cat sat on the mat"
    True
    >>> pairs = perturbed_pairs(["a b c d e"], "conditional_shuffle", seed=0)
    >>> pairs[0].positives[0].split()[0], pairs[0].positives[0].split()[-1]
    ('a', 'e')
"""

from __future__ import annotations

import random
import string
from collections.abc import Sequence
from typing import Literal, get_args

from contrastkit.data.examples import Example
from contrastkit.data.views import ViewTransform, example_rng, word_shuffle, words

Perturbation = Literal["typos", "shuffle", "conditional_shuffle", "words_and_chars"]
PERTURBATIONS: tuple[str, ...] = get_args(Perturbation)
"""The four stage-0 families, in the thesis' order."""

LETTERS = string.ascii_lowercase
CLAUSE_END = ",;:.!?"


def _check_rate(rate: float) -> None:
    if not 0.0 <= rate <= 0.25:
        raise ValueError(f"typo rate must be in [0, 0.25] (four edits of probability rate each), got {rate}")


def typo(word: str, edit: int, rng: random.Random) -> str:
    """``word`` with one edit: 0 insertion, 1 deletion, 2 substitution, 3 adjacent swap (see the module docstring)."""
    n = len(word)
    if edit == 0:
        at = rng.randrange(n + 1)
        return word[:at] + rng.choice(LETTERS) + word[at:]
    if edit == 2:
        at = rng.randrange(n)
        return word[:at] + rng.choice([c for c in LETTERS if c != word[at]]) + word[at + 1 :]
    if n < 2:
        return word
    if edit == 1:
        at = rng.randrange(n)
        return word[:at] + word[at + 1 :]
    if edit == 3:
        at = rng.randrange(n - 1)
        return word[:at] + word[at + 1] + word[at] + word[at + 2 :]
    raise ValueError(f"unknown edit {edit}; 0 insertion, 1 deletion, 2 substitution, 3 adjacent swap")


def typos(text: str, rng: random.Random, rate: float = 0.1) -> str:
    """Character typos: each word gets edit ``k`` (of 4) with probability ``rate`` each, at most one edit."""
    _check_rate(rate)
    out = []
    for word in words(text):
        u = rng.random()
        out.append(typo(word, int(u // rate), rng) if rate > 0 and u < 4 * rate else word)
    return " ".join(out)


def clauses(text: str) -> list[list[str]]:
    """The words of ``text`` in clauses: a clause ends with a word whose last character is one of ``, ; : . ! ?``."""
    out: list[list[str]] = [[]]
    for word in words(text):
        out[-1].append(word)
        if word[-1] in CLAUSE_END:
            out.append([])
    return [c for c in out if c]


def conditional_shuffle(text: str, rng: random.Random) -> str:
    """Within every clause, keep the first and last word and shuffle the words between them."""
    out = []
    for clause in clauses(text):
        inner = clause[1:-1]
        rng.shuffle(inner)
        out += [clause[0], *inner, clause[-1]] if len(clause) > 2 else clause
    return " ".join(out)


def words_and_chars(text: str, rng: random.Random, rate: float = 0.1) -> str:
    """:func:`~contrastkit.data.views.word_shuffle`, then :func:`typos` at ``rate``."""
    return typos(word_shuffle(text, rng), rng, rate)


def perturbation(name: str, *, rate: float = 0.1) -> ViewTransform:
    """The view transform of family ``name`` (one of :data:`PERTURBATIONS`); ``rate`` is the typo rate."""
    _check_rate(rate)
    if name == "typos":
        return lambda text, rng: typos(text, rng, rate)
    if name == "words_and_chars":
        return lambda text, rng: words_and_chars(text, rng, rate)
    if name == "shuffle":
        return word_shuffle
    if name == "conditional_shuffle":
        return conditional_shuffle
    raise ValueError(f"unknown perturbation {name!r}; choose one of {', '.join(PERTURBATIONS)}")


def perturbed_pairs(texts: Sequence[str], name: str, *, rate: float = 0.1, seed: int = 0) -> list[Example]:
    """``Example(anchor=text, positives=(perturbed text,))`` per text, family ``name``; see the module docstring."""
    view = perturbation(name, rate=rate)
    return [Example(anchor=t, positives=(view(t, example_rng(seed, i)),)) for i, t in enumerate(texts)]


def documents(texts: Sequence[str], *, doc_lines: int, sources: Sequence[str | None] | None = None) -> list[str]:
    """Consecutive texts joined by a space into documents of ``doc_lines`` lines (the last one may be shorter).

    ``sources`` (one per text, e.g. ``Example.source``: the file) starts a new
    document wherever the source changes, so no document spans two files.
    """
    if doc_lines < 1:
        raise ValueError(f"doc_lines must be >= 1, got {doc_lines}")
    if sources is not None and len(sources) != len(texts):
        raise ValueError(f"need one source per text: {len(sources)} sources for {len(texts)} texts")
    out: list[list[str]] = []
    for i, text in enumerate(texts):
        new_source = sources is not None and i > 0 and sources[i] != sources[i - 1]
        if not out or len(out[-1]) == doc_lines or new_source:
            out.append([])
        out[-1].append(text)
    return [" ".join(d) for d in out]


def span_pair(document: str, rng: random.Random, *, min_words: int = 5, max_words: int = 64) -> tuple[str, str] | None:
    """Two disjoint spans of ``min_words``..``max_words`` words of ``document`` in random order; None if too short.

    Lengths are uniform over what fits (the first drawn leaves room for the
    second); the two gaps around and between the spans are the order
    statistics of two uniform draws, so every placement of the two spans is
    equally likely.
    """
    if not 1 <= min_words <= max_words:
        raise ValueError(f"need 1 <= min_words <= max_words, got {min_words}, {max_words}")
    w = words(document)
    n = len(w)
    if n < 2 * min_words:
        return None
    first = rng.randint(min_words, min(max_words, n - min_words))
    second = rng.randint(min_words, min(max_words, n - first))
    free = n - first - second
    a, b = sorted((rng.randint(0, free), rng.randint(0, free)))
    one, two = " ".join(w[a : a + first]), " ".join(w[first + b : first + b + second])
    return (one, two) if rng.random() < 0.5 else (two, one)


def wikispan_pairs(
    texts: Sequence[str],
    *,
    doc_lines: int = 8,
    min_words: int = 5,
    max_words: int = 64,
    seed: int = 0,
    sources: Sequence[str | None] | None = None,
) -> list[Example]:
    """One (span, other span) :class:`Example` per document long enough; see the module docstring."""
    out = []
    for i, doc in enumerate(documents(texts, doc_lines=doc_lines, sources=sources)):
        pair = span_pair(doc, example_rng(seed, i), min_words=min_words, max_words=max_words)
        if pair is not None:
            out.append(Example(anchor=pair[0], positives=(pair[1],)))
    return out
