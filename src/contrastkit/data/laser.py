"""LA(SER)^3: length-agnostic self-reference views, and the length-attack / word-shuffle sensitivity checks.

Specification: ``thesis-methods.md`` section 2 (Xiao et al., *Length is a Curse
and a Blessing for Document-level Semantics*, EMNLP 2023, arXiv 2310.16193;
status ``paper``). The loss stays ``infonce`` (in-batch negatives, positive
column only as in SimCSE, tau = 0.05): this module only builds the examples.

**Elongation** ``f(S, m)`` repeats S's tokens (without special tokens) m
times, wrapped once in [CLS] ... [SEP]. Here it is text-level:
:func:`elongate` joins m copies of the text with one space, and the
encoder's tokenizer adds the special tokens once. For WordPiece tokenizers
(BERT, MiniLM) the tokens of the result are exactly S's tokens repeated m
times; byte-level BPE tokenizers may encode the first word of the later
copies with a leading-space token. m is drawn per example uniformly over
``{1, ..., max(1, (L_max - 2) // n)}``, n = S's token count without special
tokens (ambiguity 1: the bound leaves room for [CLS]/[SEP], nothing is
truncated); ``elongation=k`` fixes m = k (the "twice" ablation: k = 2),
capped at the same bound so the positive always fits.

**Views** (:class:`LaserViews`):

* ``reference="self"``: anchor x, positive ``f(x, m)``; for a document, x is
  its first sentence (``anchor="random"``: a uniform sentence).
* ``reference="intra"``: anchor ``f(x, m)``, positive the rest of the
  document (its other sentences in order) truncated to ``L_max - 2`` tokens.
  Documents of one sentence give no example.

Sentences are split on ``[.!?]`` followed by whitespace (ambiguity 5).
Token counts come from ``count_tokens`` (:func:`tokenizer_counter` of the
encoder's tokenizer; the default counts whitespace words, an approximation).

**Checks** (the spec puts them in ``diagnostics/length.py``; they live here
next to the operator): :func:`length_attack` and :func:`shuffle_sensitivity`.
D1 / D3 on elongated inputs: pass ``[elongate(t, m) for t in texts]`` to the
diagnostics' functions.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from contrastkit.data.examples import Example
from contrastkit.data.views import example_rng

TokenCounter = Callable[[str], int]
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def word_count(text: str) -> int:
    """Whitespace words of ``text`` (the default token count: an approximation of a tokenizer's)."""
    return len(text.split())


def tokenizer_counter(tokenizer: Any) -> TokenCounter:
    """Token count without special tokens, from a Hugging Face tokenizer (e.g. ``TextEncoder.tokenizer``)."""

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return count


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``: split after ``.``, ``!`` or ``?`` followed by whitespace; empty pieces dropped."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def elongate(text: str, repeats: int) -> str:
    """``f(text, m)`` at text level: ``m`` copies of ``text`` joined by one space (m = 1: the text itself)."""
    if repeats < 1:
        raise ValueError(f"elongate: repeats must be >= 1, got {repeats}")
    return " ".join([text] * repeats)


def max_repeats(num_tokens: int, max_length: int = 256) -> int:
    """``max(1, (max_length - 2) // n)``: the most copies of n tokens that fit with [CLS] and [SEP]."""
    if max_length < 3:
        raise ValueError(f"max_repeats: max_length must be >= 3, got {max_length}")
    return max(1, (max_length - 2) // num_tokens) if num_tokens > 0 else 1


def truncate(text: str, max_tokens: int, count_tokens: TokenCounter = word_count) -> str:
    """The longest word prefix of ``text`` with at most ``max_tokens`` tokens (binary search on the prefix)."""
    w = text.split()
    if count_tokens(text) <= max_tokens:
        return text
    lo, hi = 0, len(w)  # invariant: prefix of lo words fits, prefix of hi words does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if count_tokens(" ".join(w[:mid])) <= max_tokens else (lo, mid)
    return " ".join(w[:lo])


@dataclass(frozen=True)
class LaserViews:
    """LA(SER)^3 example builder; see the module docstring.

    Args:
        reference: ``"self"`` (anchor x, positive f(x, m)) or ``"intra"``
            (anchor f(x, m), positive the rest of the document).
        max_length: L_max (spec default 256).
        elongation: ``"random"`` (m uniform over the bound, the default) or a
            fixed m (2 = the "twice" ablation, 1 = no elongation), capped at the bound.
        anchor: ``"first"`` sentence (default) or ``"random"`` (ablation).
        count_tokens: token count without special tokens.
        split: split documents into sentences (default). For a corpus of
            single sentences (wiki1M) pass False: each text is then x itself,
            and abbreviations ("U.S. Army") are not mistaken for sentence ends
            (intra-ref then gives no examples).
        seed: document i draws from ``random.Random(f"{seed}/{i}")``.

    Call on documents (or sentences) to get one :class:`Example` each
    (``source`` = the document's index; intra-ref skips one-sentence documents).
    """

    reference: Literal["self", "intra"] = "self"
    max_length: int = 256
    elongation: Literal["random"] | int = "random"
    anchor: Literal["first", "random"] = "first"
    count_tokens: TokenCounter = word_count
    split: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.reference not in ("self", "intra"):
            raise ValueError(f"LaserViews: reference must be 'self' or 'intra', got {self.reference!r}")
        if self.anchor not in ("first", "random"):
            raise ValueError(f"LaserViews: anchor must be 'first' or 'random', got {self.anchor!r}")
        if self.elongation != "random" and not (isinstance(self.elongation, int) and self.elongation >= 1):
            raise ValueError(f"LaserViews: elongation must be 'random' or an int >= 1, got {self.elongation!r}")
        max_repeats(1, self.max_length)

    def repeats(self, text: str, rng: random.Random) -> int:
        """m for ``text``: uniform over ``{1, ..., max_repeats(n, max_length)}``, or the fixed m capped there."""
        bound = max_repeats(self.count_tokens(text), self.max_length)
        return rng.randint(1, bound) if self.elongation == "random" else min(int(self.elongation), bound)

    def example(self, document: str, index: int = 0) -> Example | None:
        """The example of document ``index`` (None: intra-ref of a document with fewer than two sentences)."""
        rng = example_rng(self.seed, index)
        sentences = (split_sentences(document) if self.split else []) or [document.strip()]
        k = 0 if self.anchor == "first" else rng.randrange(len(sentences))
        x = sentences[k]
        m = self.repeats(x, rng)
        if self.reference == "self":
            return Example(anchor=x, positives=(elongate(x, m),), source=str(index))
        rest = " ".join(sentences[:k] + sentences[k + 1 :])
        if not rest:
            return None
        positive = truncate(rest, self.max_length - 2, self.count_tokens)
        return Example(anchor=elongate(x, m), positives=(positive,), source=str(index))

    def __call__(self, documents: Sequence[str]) -> list[Example]:
        examples = (self.example(doc, i) for i, doc in enumerate(documents))
        return [ex for ex in examples if ex is not None]
