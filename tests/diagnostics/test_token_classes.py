"""D6: function vs content self-similarity, the entourage effect and frequency deciles, on hand-built states."""

import math

import pytest
import torch
from diag_helpers import tiny_encoder

from contrastkit.diagnostics.token_classes import entourage, frequent_token_ids, function_token_ids, token_classes
from contrastkit.diagnostics.tokens import TokenStates


def test_entourage_by_hand():
    # sentence 0: function (1,0); content (0,1), (1,1) -> centroid (0.5, 1); sentence 1 has no content token
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [3.0, 3.0]])
    sentence = torch.tensor([0, 0, 0, 1])
    function = torch.tensor([True, False, False, True])
    got = entourage(x, sentence, function=function, content=~function)
    assert got.tolist() == pytest.approx([0.5 / math.sqrt(1.25)])
    assert entourage(x, sentence, function=torch.zeros(4, dtype=torch.bool), content=~function).numel() == 0


def _states():
    # ids 10 (function) and 20, 21 (content) in every sentence; 30 only in the first two
    ids = torch.tensor([[2, 10, 20, 21, 30, 3], [2, 10, 20, 21, 30, 3], [2, 10, 20, 21, 3, 0], [2, 10, 20, 21, 3, 0]])
    mask = (ids != 0).long()
    g = torch.Generator().manual_seed(0)
    h = torch.randn(4, 6, 3, generator=g)
    h[:, 2] = torch.tensor([1.0, 2.0, 3.0])  # content token 20 identical everywhere: self-similarity 1
    return TokenStates.from_padded(
        [h], input_ids=ids, attention_mask=mask, special_mask=torch.isin(ids, torch.tensor([0, 2, 3]))
    )


def test_token_classes_split_and_deciles():
    states = _states()
    (layer,) = token_classes(states, [0.25], torch.tensor([10]), min_contexts=2, deciles=2)
    x, ids = states.hidden[0], states.ids
    f = x[ids == 10]
    fn = torch.nn.functional.normalize(f.double(), dim=-1)
    expected_f = float(((fn @ fn.T).sum() - 4) / 12)
    assert layer.function_self_similarity == pytest.approx(expected_f - 0.25)
    # content: ids 20 (self-sim 1), 21 and 30 (2 sentences)
    c21 = torch.nn.functional.normalize(x[ids == 21].double(), dim=-1)
    c30 = torch.nn.functional.normalize(x[ids == 30].double(), dim=-1)
    s21 = float(((c21 @ c21.T).sum() - 4) / 12)
    s30 = float(c30[0] @ c30[1])
    assert layer.content_self_similarity == pytest.approx((1 + s21 + s30) / 3 - 0.25)
    assert layer.entourage is not None and len(layer.self_similarity_by_decile) == 2
    # frequency: 10, 20, 21 occur 4 times, 30 twice -> D2 deciles {10, 20} and {21, 30}
    assert layer.self_similarity_by_decile[0] == pytest.approx((expected_f + 1) / 2)
    assert layer.self_similarity_by_decile[1] == pytest.approx((s21 + s30) / 2)
    with pytest.raises(ValueError):
        token_classes(states, [0.1, 0.2], torch.tensor([10]))


def test_frequent_and_function_token_ids(tmp_path):
    assert frequent_token_ids(_states(), k=2).tolist() == [10, 20]
    enc = tiny_encoder(tmp_path / "bert")
    ids = function_token_ids(enc, words=["the", "a", "cat", "whereafter", "[CLS]"])
    vocab = enc.tokenizer.get_vocab()
    assert ids.tolist() == sorted([vocab["the"], vocab["a"], vocab["cat"]])  # unknown words and specials dropped
    default = set(function_token_ids(enc).tolist())
    assert {vocab["the"], vocab["of"], vocab["on"]} <= default and vocab["cat"] not in default
