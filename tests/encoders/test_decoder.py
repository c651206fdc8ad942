"""DecoderEncoder on tiny random GPT-2 / Llama: pooled positions, padding, rationales, save/load."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from encoder_helpers import SENTENCES, st_encode, tiny_gpt2, tiny_llama

from contrastkit.encoders import DecoderEncoder, PromptTemplate, load_encoder
from contrastkit.encoders.prompt_template import GRACE_SYSTEM

TEXT = "the cat sat on the mat"


def _states(enc: DecoderEncoder, string: str, *, special: bool = True) -> torch.Tensor:
    """Final-layer states of ``string`` run alone (no padding)."""
    ids = enc.tokenizer(string, add_special_tokens=special, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        return enc.model.base_model(input_ids=ids).last_hidden_state[0]


def test_prompteol_last_token_is_the_final_quote():
    model, tok = tiny_gpt2(lm=False)
    enc = DecoderEncoder(model, tok, "prompteol")
    string = f'This sentence: "{TEXT}" means in one word:"'
    expected = torch.nn.functional.normalize(_states(enc, string)[-1], dim=-1)
    torch.testing.assert_close(enc.encode([TEXT])[0], expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("side", ["left", "right"])
def test_batches_match_single_texts_whatever_the_padding_side(side):
    model, tok = tiny_gpt2(lm=False)
    tok.padding_side = side
    for pooling in ("last", "mean", "mean_excl_prompt"):
        enc = DecoderEncoder(model, tok, PromptTemplate.preset("prompteol", pooling=pooling))
        batch = enc.encode(SENTENCES, batch_size=len(SENTENCES))
        alone = torch.cat([enc.encode([s]) for s in SENTENCES])
        torch.testing.assert_close(batch, alone, atol=1e-5, rtol=1e-5, msg=pooling)


def test_mean_pools_every_token_of_the_prompted_input():
    model, tok = tiny_gpt2(lm=False)
    enc = DecoderEncoder(model, tok, PromptTemplate.preset("prompteol", pooling="mean", normalize=False))
    string = f'This sentence: "{TEXT}" means in one word:"'
    torch.testing.assert_close(enc.encode([TEXT])[0], _states(enc, string).mean(0), atol=1e-5, rtol=1e-5)


def test_mean_excl_prompt_pools_exactly_the_input_tokens():
    model, tok = tiny_gpt2(lm=False)
    enc = DecoderEncoder(model, tok, PromptTemplate.preset("prompteol", pooling="mean_excl_prompt", normalize=False))
    features = enc.tokenize([TEXT, "blue"])
    for row, text in enumerate([TEXT, "blue"]):
        pooled = features["input_ids"][row][features["pool_mask"][row].bool()]
        assert tok.decode(pooled) == text
    states = _states(enc, f'This sentence: "{TEXT}" means in one word:"')
    keep = features["pool_mask"][0][: states.shape[0]].bool()
    torch.testing.assert_close(enc(features)[0].detach(), states[keep].mean(0), atol=1e-5, rtol=1e-5)


def test_prompt_replaces_the_instruction():
    model, tok = tiny_gpt2(lm=False)
    enc = DecoderEncoder(model, tok, PromptTemplate.e5_mistral(), prompts={"query": "Instruct: Find\nQuery: "})
    string, spans = enc.render("hello world", prompt="Instruct: Find\nQuery: ")
    assert string == "Instruct: Find\nQuery: hello world<|endoftext|>"
    assert string[spans[0][0] : spans[0][1]] == "hello world"
    string_state = torch.nn.functional.normalize(_states(enc, string)[-1], dim=-1)
    torch.testing.assert_close(enc.encode(["hello world"], prompt_name="query")[0], string_state, atol=1e-5, rtol=1e-5)


def test_max_length_cuts_the_text_and_keeps_the_template():
    model, tok = tiny_gpt2(lm=False)
    enc = DecoderEncoder(model, tok, "prompteol", max_length=14)
    features = enc.tokenize(["the cat sat on the mat and the dog sat on the mat " * 3])
    ids = features["input_ids"][0]
    assert ids.shape[0] <= 14
    assert tok.decode(ids).endswith('" means in one word:"')


def test_hierarchical_on_tiny_llama_is_batch_invariant():
    model, tok = tiny_llama()
    tok.padding_side = "left"
    enc = DecoderEncoder(model, tok, PromptTemplate.hierarchical("Describe it in one word."))
    batch = enc.encode(SENTENCES)
    alone = torch.cat([enc.encode([s]) for s in SENTENCES])
    torch.testing.assert_close(batch, alone, atol=1e-5, rtol=1e-5)
    string, _ = enc.render(TEXT)
    expected = torch.nn.functional.normalize(_states(enc, string, special=False)[-1], dim=-1)
    torch.testing.assert_close(enc.encode([TEXT])[0], expected, atol=1e-5, rtol=1e-5)


def _rationale_encoder(seed: int, cache_path=None) -> DecoderEncoder:
    model, tok = tiny_gpt2(lm=True)
    template = PromptTemplate.preset("rationale", max_new_tokens=6)
    return DecoderEncoder(model, tok, template, seed=seed, cache_path=cache_path)


def _count_generate(monkeypatch, enc: DecoderEncoder) -> list[int]:
    calls: list[int] = []
    original = enc.model.generate

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(enc.model, "generate", counting)
    return calls


def test_rationale_is_deterministic_and_cached_by_input_hash(monkeypatch):
    a, b, other = _rationale_encoder(0), _rationale_encoder(0), _rationale_encoder(1)
    calls = _count_generate(monkeypatch, a)
    emb_a = a.encode(SENTENCES[:3])
    assert len(calls) == 3 and len(a.cache) == 3
    torch.testing.assert_close(a.encode(list(reversed(SENTENCES[:3]))), emb_a.flip(0))
    assert len(calls) == 3  # every rationale came from the cache
    torch.testing.assert_close(b.encode(SENTENCES[:3]), emb_a)  # same seed, fresh encoder
    rendered = a.template.render(SENTENCES[0], a.tokenizer)
    key = hashlib.sha256(json.dumps([rendered.text, 6, 1.0, 1.0, 0]).encode()).hexdigest()
    assert a.rationale_key(rendered) == key and key in a.cache
    assert a.rationale(rendered).text == b.rationale(rendered).text
    texts_a = [a.rationale(a.template.render(s, a.tokenizer)).text for s in SENTENCES[:3]]
    texts_other = [other.rationale(other.template.render(s, other.tokenizer)).text for s in SENTENCES[:3]]
    assert texts_a != texts_other  # the seed matters
    meta = a.metadata()
    assert meta["seed"] == 0 and meta["rationales"] == 3 and 0 < meta["mean_rationale_tokens"] <= 6
    assert meta["template"]["system"] == GRACE_SYSTEM


def test_rationale_pooling_covers_input_and_rationale_only():
    enc = _rationale_encoder(0)
    features = enc.tokenize([TEXT])
    rationale = enc.rationale(enc.template.render(TEXT, enc.tokenizer)).text
    pooled = enc.tokenizer.decode(features["input_ids"][0][features["pool_mask"][0].bool()])
    assert pooled.startswith(TEXT)
    assert pooled[len(TEXT) :].strip() == rationale.strip()
    assert "<|system|>" not in pooled and "reason" not in pooled
    assert features["pool_mask"].sum() < features["attention_mask"].sum()


def test_rationale_cache_file_is_reused(tmp_path, monkeypatch):
    first = _rationale_encoder(0, cache_path=tmp_path / "cache.jsonl")
    emb = first.encode(SENTENCES[:2])
    assert len((tmp_path / "cache.jsonl").read_text().splitlines()) == 2
    second = _rationale_encoder(0, cache_path=tmp_path / "cache.jsonl")
    calls = _count_generate(monkeypatch, second)
    torch.testing.assert_close(second.encode(SENTENCES[:2]), emb)
    assert calls == []


def test_generating_template_needs_a_causal_lm():
    model, tok = tiny_gpt2(lm=False)
    with pytest.raises(ValueError, match="cannot generate"):
        DecoderEncoder(model, tok, "rationale")


def test_save_and_load_restore_the_template(tmp_path):
    model, tok = tiny_gpt2(lm=True)
    enc = DecoderEncoder(
        model, tok, PromptTemplate.gritlm("Find it"), seed=3, prompts={"query": "<|user|>\nQ\n<|embed|>\n"}
    )
    enc.save(tmp_path / "dec")
    assert not list((tmp_path / "dec").rglob("*.bin"))
    back = load_encoder(tmp_path / "dec")
    assert isinstance(back, DecoderEncoder)
    assert back.template == enc.template and back.seed == 3 and back.prompts == enc.prompts
    torch.testing.assert_close(back.encode(SENTENCES), enc.encode(SENTENCES), atol=1e-6, rtol=1e-6)
    last = load_encoder(tmp_path / "dec", pooling="last", normalize=False)
    assert last.template.pooling == "last" and not last.normalize


def test_plain_template_matches_sentence_transformers(tmp_path):
    model, tok = tiny_gpt2(lm=False)
    enc = DecoderEncoder(model, tok, PromptTemplate(pooling="mean"))
    enc.save(tmp_path / "dec")
    torch.testing.assert_close(st_encode(tmp_path / "dec", SENTENCES), enc.encode(SENTENCES), atol=1e-5, rtol=1e-5)


def test_kind_decoder_on_a_plain_checkpoint(tmp_path):
    model, tok = tiny_gpt2(lm=True)
    model.save_pretrained(tmp_path / "gpt")
    tok.save_pretrained(tmp_path / "gpt")
    enc = load_encoder(tmp_path / "gpt", kind="decoder", template="hierarchical")
    assert isinstance(enc, DecoderEncoder) and enc.template.system is not None
    assert enc.encode(["hello"]).shape == (1, 32)
    assert load_encoder(tmp_path / "gpt", kind="decoder").template == PromptTemplate.preset("prompteol")


def test_greedy_rationale_ignores_the_seed():
    model, tok = tiny_gpt2(lm=True)
    template = PromptTemplate.preset("rationale", max_new_tokens=4, temperature=0.0)
    a = DecoderEncoder(model, tok, template, seed=0)
    b = DecoderEncoder(model, tok, template, seed=1)
    rendered = template.render(TEXT, tok)
    assert a.rationale(rendered).text == b.rationale(rendered).text
