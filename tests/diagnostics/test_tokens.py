"""Packed token states: layout by hand, and the tiny BERT's hidden states through the encoder's transformer."""

import pytest
import torch
from diag_helpers import SENTENCES, tiny_encoder

from contrastkit.diagnostics.tokens import TokenStates, token_states


def test_from_padded_layout_and_first_pad():
    hidden = [torch.arange(24.0).reshape(2, 4, 3)]
    ids = torch.tensor([[2, 7, 3, 0], [2, 3, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    special = torch.isin(ids, torch.tensor([0, 2, 3]))
    s = TokenStates.from_padded(hidden, input_ids=ids, attention_mask=mask, special_mask=special, pad_id=0)
    assert s.ids.tolist() == [2, 7, 3, 2, 3] and s.sentence.tolist() == [0, 0, 0, 1, 1]
    assert s.position.tolist() == [0, 1, 2, 0, 1] and s.special.tolist() == [True, False, True, True, True]
    assert s.hidden[0, 3].tolist() == [12.0, 13.0, 14.0] and s.padded_length == 4
    assert s.token_mask(exclude_special=True).tolist() == [False, True, False, False, False]
    p = TokenStates.from_padded(
        hidden, input_ids=ids, attention_mask=mask, special_mask=special, keep_first_pad=True, pad_id=0
    )
    assert p.pad.tolist() == [False, False, False, True, False, False, True]
    assert p.position[p.pad].tolist() == [3, 2] and p.special[p.pad].tolist() == [False, False]
    assert p.token_mask(exclude_special=False).sum() == 5
    with pytest.raises(ValueError, match="right-padded"):
        TokenStates.from_padded(hidden, input_ids=ids, attention_mask=mask.flip(1), special_mask=special)


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    return tiny_encoder(tmp_path_factory.mktemp("bert"))


def test_token_states_match_the_model_run_directly(encoder):
    states = token_states(encoder, SENTENCES, batch_size=5)
    features = encoder.tokenize(SENTENCES)
    encoder.eval()
    with torch.no_grad():
        out = encoder.model(**features, output_hidden_states=True).hidden_states
    mask = features["attention_mask"].bool()
    assert states.num_layers == 3 and states.num_sentences == len(SENTENCES)
    assert states.lengths.tolist() == mask.sum(1).tolist()
    for layer in range(3):
        torch.testing.assert_close(states.hidden[layer], out[layer][mask], atol=1e-5, rtol=1e-5)
    assert states.ids.tolist() == features["input_ids"][mask].tolist()
    cls_sep = torch.tensor([encoder.tokenizer.cls_token_id, encoder.tokenizer.sep_token_id])
    assert states.special.tolist() == torch.isin(states.ids, cls_sep).tolist()
    torch.testing.assert_close(token_states(encoder, SENTENCES, batch_size=64).hidden, states.hidden)


def test_first_pad_state_equals_the_fully_padded_run(encoder):
    encoder.train()  # token_states runs in eval mode (no dropout) and restores the mode
    states = token_states(encoder, SENTENCES, batch_size=4, keep_first_pad=True)
    assert encoder.training
    encoder.eval()
    features = encoder.tokenize(SENTENCES)  # the whole set padded to its longest sentence, as the paper's code
    with torch.no_grad():
        last = encoder.model(**features).last_hidden_state
    lengths = features["attention_mask"].sum(1)
    short = (lengths < lengths.max()).nonzero().reshape(-1)
    expected = last[short, lengths[short]]
    torch.testing.assert_close(states.hidden[-1][states.pad], expected, atol=1e-5, rtol=1e-5)
    assert states.ids[states.pad].tolist() == [encoder.tokenizer.pad_token_id] * len(short)
    assert states.first_pad_kept
