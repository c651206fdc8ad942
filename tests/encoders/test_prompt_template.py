"""PromptTemplate: the exact input strings of every preset, and validation."""

from __future__ import annotations

import pytest
from encoder_helpers import EOS, bpe_tokenizer

from contrastkit.encoders import PromptTemplate
from contrastkit.encoders.prompt_template import GEN2EMBED_SYSTEM, GRACE_SYSTEM, PRESETS, truncate_text


@pytest.fixture(scope="module")
def tok():
    return bpe_tokenizer()


def _check_span(rendered, text):
    s, e = rendered.input_span
    assert rendered.text[s:e] == text


def test_prompteol(tok):
    r = PromptTemplate.preset("prompteol").render("the cat", tok)
    assert r.text == 'This sentence: "the cat" means in one word:"'
    _check_span(r, "the cat")
    assert PRESETS["prompteol"].pooling == "last"


def test_e5_mistral_appends_eos(tok):
    r = PromptTemplate.e5_mistral("Find the answer").render("what is it", tok)
    assert r.text == f"Instruct: Find the answer\nQuery: what is it{EOS}"
    _check_span(r, "what is it")
    assert PromptTemplate.e5_mistral().render("doc text", tok).text == f"doc text{EOS}"


def test_gritlm_query_and_document_formats(tok):
    assert PromptTemplate.gritlm("Find it").render("q", tok).text == "<|user|>\nFind it\n<|embed|>\nq"
    assert PromptTemplate.gritlm().render("d", tok).text == "<|embed|>\nd"
    assert PromptTemplate.gritlm().pooling == "mean_excl_prompt"


def test_hierarchical_uses_the_chat_template(tok):
    r = PromptTemplate.hierarchical("Retrieve a similar sentence in one word.").render("a red dog", tok)
    expected = (
        f"<|system|>\n{GEN2EMBED_SYSTEM}<|end|>\n"
        "<|user|>\nRetrieve a similar sentence in one word.\na red dog<|end|>\n<|assistant|>\n"
    )
    assert r.text == expected
    _check_span(r, "a red dog")
    assert GEN2EMBED_SYSTEM == (
        "Given an image, summarize the provided image in one word. Given only text, describe the text in one word."
    )


def test_rationale_prompt(tok):
    t = PromptTemplate.preset("rationale")
    assert (t.generate, t.temperature, t.top_p, t.max_new_tokens, t.max_input_tokens, t.pooling) == (
        True,
        1.0,
        1.0,
        2048,
        1024,
        "mean_excl_prompt",
    )
    r = t.render("some text", tok)
    assert r.text == f"<|system|>\n{GRACE_SYSTEM}<|end|>\n<|user|>\nsome text<|end|>\n<|assistant|>\n"
    assert "<think></think>" in GRACE_SYSTEM


def test_instruction_override_and_verbatim_text(tok):
    t = PromptTemplate(instruction="Old: ", input_slot="[{text}]", suffix="!")
    assert t.render("x", tok).text == "Old: [x]!"
    assert t.render("x", tok, instruction="New: ").text == "New: [x]!"
    weird = "  {text} {} <|end|> "
    r = PromptTemplate.preset("hierarchical").render(weird, tok)
    _check_span(r, weird)


def test_validation(tok):
    with pytest.raises(ValueError, match="exactly once"):
        PromptTemplate(input_slot="no slot")
    with pytest.raises(ValueError, match="unknown pooling 'cls'"):
        PromptTemplate(pooling="cls")
    with pytest.raises(ValueError, match="unknown template preset"):
        PromptTemplate.preset("nope")
    no_chat = bpe_tokenizer()
    no_chat.chat_template = None
    with pytest.raises(ValueError, match="no chat_template"):
        PromptTemplate(system="s").render("x", no_chat)


def test_dict_round_trip():
    t = PromptTemplate.hierarchical("Task")
    assert PromptTemplate.from_dict(t.to_dict()) == t
    with pytest.raises(ValueError, match="unknown PromptTemplate fields"):
        PromptTemplate.from_dict({"bogus": 1})


def test_truncate_text_keeps_a_token_prefix(tok):
    text = "the cat sat on the mat"
    assert truncate_text(tok, text, 100) == text
    cut = truncate_text(tok, text, 3)
    assert text.startswith(cut) and len(tok(cut, add_special_tokens=False)["input_ids"]) == 3
    assert truncate_text(tok, text, 0) == ""
