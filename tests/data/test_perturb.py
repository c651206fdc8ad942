"""Stage-0 perturbations and wikispan pairs: edits, rates, clause rules, disjoint spans, determinism."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from contrastkit.data.perturb import (
    PERTURBATIONS,
    clauses,
    conditional_shuffle,
    documents,
    perturbation,
    perturbed_pairs,
    span_pair,
    typo,
    typos,
    wikispan_pairs,
    words_and_chars,
)
from contrastkit.data.views import augment

SENTENCE = "the quick brown fox jumps over the lazy dog, then it runs away; nobody sees it happen."


def _one_edit(a: str, b: str) -> bool:
    """True when b is a within one insertion, deletion, substitution or adjacent swap (or equal)."""
    if a == b:
        return True
    if abs(len(a) - len(b)) == 1:
        short, long = sorted((a, b), key=len)
        return any(long[:i] + long[i + 1 :] == short for i in range(len(long)))
    if len(a) != len(b):
        return False
    diff = [i for i in range(len(a)) if a[i] != b[i]]
    if len(diff) == 1:
        return True
    return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]


def test_each_edit_kind() -> None:
    rng = random.Random(0)
    word = "abcdef"
    inserted, deleted, substituted, swapped = (typo(word, k, rng) for k in range(4))
    assert len(inserted) == 7 and any(inserted[:i] + inserted[i + 1 :] == word for i in range(7))
    assert len(deleted) == 5 and any(word[:i] + word[i + 1 :] == deleted for i in range(6))
    assert len(substituted) == 6 and sum(x != y for x, y in zip(word, substituted, strict=True)) == 1
    assert sorted(swapped) == sorted(word) and swapped != word and _one_edit(word, swapped)
    assert typo("a", 1, rng) == "a" and typo("a", 3, rng) == "a"  # need two characters
    with pytest.raises(ValueError, match="unknown edit"):
        typo("abc", 4, rng)


def test_typos_one_edit_per_word_at_the_given_rate() -> None:
    rng = random.Random(1)
    vocab = ["abcdefg", "hijklmn", "opqrstu"]
    text = " ".join(rng.choice(vocab) for _ in range(4000))
    out = typos(text, random.Random(2), rate=0.1)
    before, after = text.split(), out.split()
    assert len(before) == len(after)  # no word vanishes or splits
    assert all(_one_edit(a, b) for a, b in zip(before, after, strict=True))
    kinds = Counter()
    for a, b in zip(before, after, strict=True):
        if a != b:
            kinds["insert" if len(b) > len(a) else "delete" if len(b) < len(a) else "same-length"] += 1
    n = len(before)
    # insertion and deletion: 0.1 each; substitution + swap: 0.2 (distinct letters, so every edit shows)
    assert abs(kinds["insert"] / n - 0.1) < 0.02 and abs(kinds["delete"] / n - 0.1) < 0.02
    assert abs(kinds["same-length"] / n - 0.2) < 0.025


def test_typos_rates_and_determinism() -> None:
    assert typos(SENTENCE, random.Random(0), rate=0.0) == " ".join(SENTENCE.split())
    assert typos(SENTENCE, random.Random(5)) == typos(SENTENCE, random.Random(5))
    with pytest.raises(ValueError, match=r"\[0, 0.25\]"):
        typos(SENTENCE, random.Random(0), rate=0.3)


def test_clauses_and_conditional_shuffle_keep_clause_ends() -> None:
    parts = clauses(SENTENCE)
    assert [len(c) for c in parts] == [9, 4, 4]
    assert parts[0][-1] == "dog," and parts[1][-1] == "away;"
    changed = 0
    for seed in range(20):
        out = clauses(conditional_shuffle(SENTENCE, random.Random(seed)))
        assert [len(c) for c in out] == [9, 4, 4]
        for old, new in zip(parts, out, strict=True):
            assert new[0] == old[0] and new[-1] == old[-1] and sorted(new) == sorted(old)
        changed += out != parts
    assert changed >= 15
    assert conditional_shuffle("one two, three", random.Random(0)) == "one two, three"  # nothing inside to move


def test_words_and_chars_shuffles_and_typos() -> None:
    out = words_and_chars(SENTENCE, random.Random(3), rate=0.25)
    assert len(out.split()) == len(SENTENCE.split())
    assert sorted(out.split()) != sorted(SENTENCE.split())  # some typo at rate 0.25 on 17 words
    assert out == words_and_chars(SENTENCE, random.Random(3), rate=0.25)


def test_perturbation_names() -> None:
    assert PERTURBATIONS == ("typos", "shuffle", "conditional_shuffle", "words_and_chars")
    for name in PERTURBATIONS:
        view = perturbation(name, rate=0.2)
        assert view(SENTENCE, random.Random(0)) == view(SENTENCE, random.Random(0))
    shuffled = perturbation("shuffle")(SENTENCE, random.Random(0))
    assert sorted(shuffled.split()) == sorted(SENTENCE.split())
    with pytest.raises(ValueError, match="unknown perturbation 'typo'"):
        perturbation("typo")


def test_perturbed_pairs_are_seeded_per_sentence() -> None:
    texts = [f"{SENTENCE} {i}" for i in range(6)]
    pairs = perturbed_pairs(texts, "typos", rate=0.2, seed=7)
    assert [p.anchor for p in pairs] == texts
    assert pairs == perturbed_pairs(texts, "typos", rate=0.2, seed=7)
    assert pairs != perturbed_pairs(texts, "typos", rate=0.2, seed=8)
    assert perturbed_pairs(texts[:3], "typos", rate=0.2, seed=7) == pairs[:3]  # independent of the others
    # the same transform through views.augment gives the same views
    assert augment(texts, [perturbation("typos", rate=0.2)], seed=7) == pairs


def test_documents_windows_and_sources() -> None:
    lines = [f"l{i}" for i in range(7)]
    assert documents(lines, doc_lines=3) == ["l0 l1 l2", "l3 l4 l5", "l6"]
    assert documents(lines, doc_lines=1) == lines
    sources = ["a", "a", "b", "b", "b", "b", "b"]
    assert documents(lines, doc_lines=3, sources=sources) == ["l0 l1", "l2 l3 l4", "l5 l6"]
    with pytest.raises(ValueError, match="doc_lines"):
        documents(lines, doc_lines=0)
    with pytest.raises(ValueError, match="one source per text"):
        documents(lines, doc_lines=2, sources=["a"])


def test_span_pairs_are_disjoint_and_sized() -> None:
    document = " ".join(f"w{i}" for i in range(40))
    starts = Counter()
    for seed in range(300):
        pair = span_pair(document, random.Random(seed), min_words=5, max_words=12)
        assert pair is not None
        idx = [[int(w[1:]) for w in span.split()] for span in pair]
        for span in idx:
            assert 5 <= len(span) <= 12 and span == list(range(span[0], span[0] + len(span)))
        assert not set(idx[0]) & set(idx[1])
        starts[min(idx[0][0], idx[1][0])] += 1
    assert len(starts) > 10  # placements vary
    assert span_pair("a b c d e f g h i", random.Random(0), min_words=5) is None  # 9 < 2 * 5 words
    exact = span_pair("a b c d e f g h i j", random.Random(0), min_words=5)
    assert exact is not None and sorted(exact) == ["a b c d e", "f g h i j"]
    with pytest.raises(ValueError, match="min_words"):
        span_pair(document, random.Random(0), min_words=6, max_words=5)


def test_wikispan_pairs() -> None:
    lines = [" ".join(f"s{j}w{i}" for i in range(6)) for j in range(12)] + ["short"]
    pairs = wikispan_pairs(lines, doc_lines=4, min_words=5, max_words=64, seed=3)
    assert len(pairs) == 3  # the last document ("short") has too few words
    for ex, first in zip(pairs, (0, 4, 8), strict=True):
        doc_words = set(" ".join(lines[first : first + 4]).split())
        assert set(ex.anchor.split()) <= doc_words and set(ex.positives[0].split()) <= doc_words
        assert not set(ex.anchor.split()) & set(ex.positives[0].split())
    assert pairs == wikispan_pairs(lines, doc_lines=4, seed=3)
    assert pairs != wikispan_pairs(lines, doc_lines=4, seed=4)
