"""The padding-free BERT forward against the model's own padded forward: states, gradients, dropout, fallbacks."""

from __future__ import annotations

import pytest
import torch
from encoder_helpers import SENTENCES, bert_tokenizer, tiny_bert, tiny_gpt2
from transformers import BertModel

from contrastkit.encoders.text import TextEncoder
from contrastkit.encoders.unpad import supports_unpadded, unpadded_token_states


def tiny_bert64(tmp_path, *, dropout: float = 0.0, **config) -> tuple[BertModel, object]:
    """encoder_helpers' tiny BERT in float64, 4 heads, 2 token types, dropout as given; and its tokenizer."""
    tok = bert_tokenizer(tmp_path / "vocab")
    model = tiny_bert(
        tok,
        num_attention_heads=4,
        type_vocab_size=2,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        **config,
    )
    return model.double(), tok


def features(tok, *, side: str = "right", pairs: bool = False) -> dict[str, torch.Tensor]:
    tok.padding_side = side
    if pairs:
        return dict(tok(SENTENCES, SENTENCES[::-1], padding=True, return_tensors="pt"))
    return dict(tok(SENTENCES, padding=True, return_tensors="pt"))


@pytest.mark.parametrize(("side", "pairs"), [("right", False), ("left", False), ("right", True)])
def test_states_equal_the_padded_forward_at_attended_positions(tmp_path, side, pairs):
    model, tok = tiny_bert64(tmp_path)
    model.eval()
    f = features(tok, side=side, pairs=pairs)
    mask = f["attention_mask"].bool()
    assert (~mask).any(), "the batch must have padding"
    with torch.no_grad():
        ref = model(**f).last_hidden_state
        out = unpadded_token_states(model, **f)
    assert out.shape == ref.shape
    torch.testing.assert_close(out[mask], ref[mask], rtol=1e-10, atol=1e-10)
    assert torch.count_nonzero(out[~mask]) == 0


def test_gradients_equal_the_padded_forward(tmp_path):
    model, tok = tiny_bert64(tmp_path)
    model.train()  # dropout probabilities are 0: train mode, deterministic
    f = features(tok, pairs=True)
    mask = f["attention_mask"].unsqueeze(-1).double()
    weights = torch.randn(mask.shape[0], mask.shape[1], 32, dtype=torch.float64)

    def grads(states_fn):
        model.zero_grad()
        (states_fn() * weights * mask).sum().backward()
        return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    ref = grads(lambda: model(**f).last_hidden_state)
    out = grads(lambda: unpadded_token_states(model, **f))
    assert set(out) == set(ref) - {n for n in ref if n.startswith("pooler.")}
    for name, grad in out.items():
        torch.testing.assert_close(grad, ref[name], rtol=1e-9, atol=1e-10, msg=name)


def test_dropout_is_deterministic_by_seed_and_active_in_training(tmp_path):
    model, tok = tiny_bert64(tmp_path, dropout=0.2)
    f = features(tok)
    mask = f["attention_mask"].bool()
    model.train()
    torch.manual_seed(3)
    first = unpadded_token_states(model, **f)
    torch.manual_seed(3)
    again = unpadded_token_states(model, **f)
    model.eval()
    plain = unpadded_token_states(model, **f)
    torch.testing.assert_close(first, again, rtol=0, atol=0)
    assert not torch.allclose(first[mask], plain[mask])
    with torch.no_grad():
        torch.testing.assert_close(plain[mask], model(**f).last_hidden_state[mask], rtol=1e-10, atol=1e-10)


def test_supported_models(tmp_path):
    model, _ = tiny_bert64(tmp_path)
    assert supports_unpadded(model)
    assert not supports_unpadded(tiny_bert64(tmp_path, position_embedding_type="relative_key")[0])
    assert not supports_unpadded(tiny_bert64(tmp_path, is_decoder=True)[0])
    assert not supports_unpadded(tiny_gpt2(lm=False)[0])


def test_text_encoder_embeddings_do_not_depend_on_the_path(tmp_path):
    model, tok = tiny_bert64(tmp_path)
    encoder = TextEncoder(model, tok, pooling="mean")
    assert encoder.unpad
    fast = encoder.encode(SENTENCES, batch_size=5)
    encoder.unpad = False
    slow = encoder.encode(SENTENCES, batch_size=5)
    torch.testing.assert_close(fast, slow, rtol=1e-10, atol=1e-10)


@pytest.mark.skipif(__import__("importlib").util.find_spec("peft") is None, reason="peft is not installed")
def test_lora_adapters_are_used_and_trained(tmp_path):
    from peft import LoraConfig, inject_adapter_in_model

    model, tok = tiny_bert64(tmp_path)
    model = inject_adapter_in_model(LoraConfig(r=2, target_modules=["query", "value", "dense"]), model)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p)  # peft starts B at zero, which would hide an adapter that is skipped
    model.train()
    f = features(tok)
    mask = f["attention_mask"].unsqueeze(-1).double()

    def lora_grads(states_fn):
        model.zero_grad()
        states = states_fn()
        (states * mask).square().sum().backward()
        return states.detach(), {
            n: p.grad.clone() for n, p in model.named_parameters() if "lora_" in n and p.grad is not None
        }

    ref_states, ref = lora_grads(lambda: model(**f).last_hidden_state)
    states, out = lora_grads(lambda: unpadded_token_states(model, **f))
    keep = f["attention_mask"].bool()
    torch.testing.assert_close(states[keep], ref_states[keep], rtol=1e-10, atol=1e-10)
    assert out.keys() == ref.keys() and any("query.lora_B" in n for n in out)
    for name, grad in out.items():
        torch.testing.assert_close(grad, ref[name], rtol=1e-9, atol=1e-10, msg=name)
