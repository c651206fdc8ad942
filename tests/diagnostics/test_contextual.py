"""D1 to D5 on hand-built token states: self-similarity, intra-sentence similarity, norms, the D1 draw, both modes."""

import math

import pytest
import torch

from contrastkit.diagnostics.contextual import (
    first_occurrences,
    intra_similarity,
    mean_norm,
    sample_tokens,
    self_similarity,
)
from contrastkit.diagnostics.layerwise import contextualization
from contrastkit.diagnostics.tokens import TokenStates

R2 = math.sqrt(2)


def _cos(u, v):
    return sum(a * b for a, b in zip(u, v)) / math.sqrt(sum(a * a for a in u) * sum(b * b for b in v))


# three sentences: ids [7, 8, 7] / [7, 9] / [8, 7], one 2-d vector per token
X = torch.tensor([[1.0, 0.0], [0.0, 1.0], [5.0, 5.0], [1.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
IDS = torch.tensor([7, 8, 7, 7, 9, 8, 7])
SENT = torch.tensor([0, 0, 0, 1, 1, 2, 2])
ALL = torch.ones(7, dtype=torch.bool)


def test_first_occurrences_skip_repeats_inside_a_sentence():
    assert first_occurrences(IDS, SENT, ALL).tolist() == [0, 1, 3, 4, 5, 6]
    assert first_occurrences(IDS, SENT, torch.tensor([0, 1, 1, 1, 1, 1, 1]).bool()).tolist() == [1, 2, 3, 4, 5, 6]


def test_self_similarity_by_hand():
    ss = self_similarity(X, IDS, SENT, eligible=ALL, min_contexts=2)
    assert ss.ids.tolist() == [7, 8] and ss.contexts.tolist() == [3, 2]
    # id 7: (1,0), (1,1), (0,1) -> cosines 1/sqrt2, 0, 1/sqrt2; id 8: (0,1), (1,1) -> 1/sqrt2
    assert ss.values.tolist() == pytest.approx([R2 / 3, 1 / R2])
    assert ss.mean == pytest.approx((R2 / 3 + 1 / R2) / 2)
    assert self_similarity(X, IDS, SENT, eligible=ALL, min_contexts=3).ids.tolist() == [7]
    assert self_similarity(X, IDS, SENT, eligible=ALL, min_contexts=2, round_to=3).values.tolist() == [0.471, 0.707]
    assert self_similarity(X, IDS, SENT, eligible=~ALL).mean == 0.0


def test_intra_similarity_and_norm_against_loops():
    rows = X.tolist()
    expected = []
    for s in range(3):
        vecs = [rows[r] for r in range(7) if SENT[r] == s]
        centre = [sum(v[k] for v in vecs) / len(vecs) for k in range(2)]
        expected.append(sum(_cos(v, centre) for v in vecs) / len(vecs))
    assert intra_similarity(X, SENT, eligible=ALL).tolist() == pytest.approx(expected)
    assert expected[0] == pytest.approx((R2 + 1) / 3)  # (1,0), (0,1), (5,5) around (2,2)
    only_first = torch.tensor([1, 1, 1, 0, 0, 0, 0]).bool()
    assert intra_similarity(X, SENT, eligible=only_first).tolist() == pytest.approx(expected[:1])
    norms = [math.hypot(*r) for r in rows]
    assert mean_norm(X, eligible=ALL) == pytest.approx(sum(norms) / 7)


def test_sample_tokens_draws_one_eligible_token_per_sentence():
    eligible = torch.tensor([0, 1, 1, 0, 1, 1, 0]).bool()
    for seed in range(20):
        rows = sample_tokens(
            SENT, eligible, sentences=torch.tensor([2, 0, 1]), generator=torch.Generator().manual_seed(seed)
        )
        assert SENT[rows].tolist() == [2, 0, 1] and bool(eligible[rows].all())
    seen = {int(sample_tokens(SENT, eligible, sentences=torch.tensor([0]), generator=torch.Generator().manual_seed(s)))
            for s in range(40)}  # fmt: skip
    assert seen == {1, 2}
    with pytest.raises(ValueError):
        sample_tokens(SENT, eligible & (SENT != 1), sentences=torch.tensor([1]))


def _states(hidden, ids, mask, special, **kwargs):
    return TokenStates.from_padded(hidden, input_ids=ids, attention_mask=mask, special_mask=special, **kwargs)


def test_identical_vectors_are_fully_anisotropic_and_adjusted_scores_vanish():
    ids = torch.tensor([[2, 5, 6, 3], [2, 5, 6, 3], [2, 6, 5, 3]])
    mask = torch.ones(3, 4)
    special = torch.isin(ids, torch.tensor([2, 3]))
    hidden = [torch.ones(3, 4, 4) * 0.5, torch.ones(3, 4, 4) * 3.0]
    result = contextualization(_states(hidden, ids, mask, special), min_contexts=2)
    assert result.anisotropy_sample == 3 and len(result.layers) == 2
    for layer, scale in zip(result.layers, (0.5, 3.0)):
        assert layer.anisotropy == pytest.approx(1.0) and layer.self_similarity == pytest.approx(1.0)
        assert layer.adjusted_intra_similarity == pytest.approx(0.0, abs=1e-12)
        assert layer.norm == pytest.approx(2 * scale) and layer.rogue_shares[0] == pytest.approx(0.25)
        assert layer.self_similarity_tokens == 2


def test_d1_on_forced_samples_and_special_tokens_ignored_by_default():
    # each sentence has one non-special token, so the default D1 draw is forced
    ids = torch.tensor([[2, 5, 3], [2, 6, 3]])
    special = torch.isin(ids, torch.tensor([2, 3]))
    h = torch.zeros(2, 3, 2)
    h[0, 1], h[1, 1] = torch.tensor([1.0, 0.0]), torch.tensor([1.0, 1.0])
    h[:, 0], h[:, 2] = torch.tensor([9.0, -9.0]), torch.tensor([-4.0, 7.0])
    base = contextualization(_states([h], ids, torch.ones(2, 3), special), min_contexts=2)
    assert base.layers[0].anisotropy == pytest.approx(1 / R2)
    h2 = h.clone()
    h2[:, 0] = torch.tensor([0.1, 3.0])  # moving the special tokens changes nothing by default ...
    moved = contextualization(_states([h2], ids, torch.ones(2, 3), special), min_contexts=2)
    before, after = base.layers[0].to_dict(), moved.layers[0].to_dict()
    assert after.pop("rogue_shares") == pytest.approx(before.pop("rogue_shares"))
    assert after == pytest.approx(before)
    with_special = contextualization(_states([h2], ids, torch.ones(2, 3), special), exclude_special=False)
    assert with_special.layers[0].intra_similarity != pytest.approx(base.layers[0].intra_similarity)


def test_default_mode_reuses_the_d1_sample_across_layers():
    g = torch.Generator().manual_seed(0)
    h = torch.randn(30, 6, 8, generator=g)
    ids = torch.randint(5, 40, (30, 6), generator=g)
    states = _states([h, h.clone()], ids, torch.ones(30, 6), torch.zeros(30, 6))
    result = contextualization(states, generator=torch.Generator().manual_seed(1), n_anisotropy=10)
    assert result.anisotropy_sample == 10
    assert result.layers[0].anisotropy == result.layers[1].anisotropy
    again = contextualization(states, generator=torch.Generator().manual_seed(1), n_anisotropy=10)
    assert again.to_dict() == result.to_dict()


def test_reference_compat_counts_repeats_and_padding_and_rounds():
    # id 7: 5 occurrences in 2 sentences (repeats count); id 8: 1 occurrence in each of 4 sentences
    ids = torch.tensor([[2, 7, 7, 7, 3, 0], [2, 7, 7, 8, 3, 0], [2, 8, 3, 0, 0, 0], [2, 8, 9, 9, 9, 3],
                        [2, 8, 3, 0, 0, 0]])  # fmt: skip
    mask = (ids != 0).long()
    special = torch.isin(ids, torch.tensor([0, 2, 3]))
    h = torch.randn(5, 6, 4, generator=torch.Generator().manual_seed(3))
    plain = _states([h], ids, mask, special, pad_id=0)
    with pytest.raises(ValueError, match="keep_first_pad"):
        contextualization(plain, reference_compat=True)
    states = _states([h], ids, mask, special, keep_first_pad=True, pad_id=0)
    compat = contextualization(states, reference_compat=True, generator=torch.Generator().manual_seed(0))
    # compat scores PAD (4 sentences, 10 pads), CLS and SEP (5 each) and id 7 (count 5, 2 sentences); not 8 or 9
    assert compat.layers[0].self_similarity_tokens == 4
    assert not compat.exclude_special and compat.min_contexts == 2
    x, rows = states.hidden[0].tolist(), list(zip(states.sentence.tolist(), states.ids.tolist()))
    per_id = []
    for token in (0, 2, 3, 7):
        firsts = {}
        for r, (sent, i) in enumerate(rows):
            if i == token and sent not in firsts:
                firsts[sent] = x[r]
        vecs = list(firsts.values())
        pairs = [(u, v) for a_, u in enumerate(vecs) for b_, v in enumerate(vecs) if a_ != b_]
        per_id.append(round(sum(_cos(u, v) for u, v in pairs) / len(pairs), 3))
    assert compat.layers[0].self_similarity == pytest.approx(sum(per_id) / 4, abs=1e-12)
    assert compat.layers[0].anisotropy == round(compat.layers[0].anisotropy, 3)
    default = contextualization(states, min_contexts=4)
    assert default.layers[0].self_similarity_tokens == 1  # only id 8 is in 4 sentences; specials and PAD excluded
