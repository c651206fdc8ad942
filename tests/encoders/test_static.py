"""StaticEncoder: mean of a transformer's input embeddings; save/load through sentence-transformers."""

from __future__ import annotations

import json

import pytest
import torch
from encoder_helpers import SENTENCES, st_encode, tiny_bert_folder

from contrastkit.encoders import StaticEncoder, TextEncoder, load_encoder


@pytest.fixture(scope="module")
def text_encoder(tmp_path_factory):
    return TextEncoder.from_folder(tiny_bert_folder(tmp_path_factory.mktemp("bert")), prompts={"query": "query: "})


def test_from_transformer_is_the_mean_of_input_embedding_rows(text_encoder):
    static = StaticEncoder.from_transformer(text_encoder, normalize=False)
    table = text_encoder.model.get_input_embeddings().weight.detach()
    for text in ["the cat sat on the mat", "blue"]:
        ids = text_encoder.tokenizer(text, add_special_tokens=False)["input_ids"]
        expected = sum(table[i] for i in ids) / len(ids)
        torch.testing.assert_close(static.encode([text])[0], expected)
    assert static.prompts == {"query": "query: "} and static.dim == 32


def test_batching_padding_and_empty_text(text_encoder):
    static = StaticEncoder.from_transformer(text_encoder)
    texts = [*SENTENCES, ""]
    batch = static.encode(texts, batch_size=3)
    alone = torch.cat([static.encode([t]) for t in texts])
    torch.testing.assert_close(batch, alone)
    assert torch.equal(batch[-1], torch.zeros(32))
    torch.testing.assert_close(batch[:-1].norm(dim=-1), torch.ones(len(SENTENCES)))


def test_flat_encode_equals_the_padded_training_path(text_encoder):
    static = StaticEncoder.from_transformer(text_encoder, normalize=False)
    static.max_length = 4  # cuts long texts the same way on both paths
    texts = ["", *SENTENCES, "blue", ""]
    for prompt in (None, "query: "):
        padded = static(static.tokenize(texts, prompt=prompt))
        for batch_size in (1, 3, 64):
            torch.testing.assert_close(static.encode(texts, batch_size=batch_size, prompt=prompt), padded)
    assert static.encode([]).shape == (0, 32)
    torch.testing.assert_close(static.encode(["blue"], prompt_name="query"), static.encode(["blue"], prompt="query: "))


def test_gradients_reach_the_embedding_table(text_encoder):
    static = StaticEncoder.from_transformer(text_encoder)
    static(static.tokenize(["the cat"])).sum().backward()
    grad = static.embedding.weight.grad
    used = set(text_encoder.tokenizer("the cat", add_special_tokens=False)["input_ids"])
    assert set(grad.abs().sum(1).nonzero().flatten().tolist()) == used
    # the source transformer is untouched
    assert text_encoder.model.get_input_embeddings().weight.grad is None


def test_save_then_sentence_transformers_and_load_encoder(text_encoder, tmp_path):
    static = StaticEncoder.from_transformer(text_encoder)
    static.save(tmp_path / "static")
    modules = json.loads((tmp_path / "static" / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[-1] for m in modules] == ["StaticEmbedding", "Normalize"]
    assert not list((tmp_path / "static").rglob("*.bin"))
    ours = static.encode(SENTENCES, prompt_name="query")
    torch.testing.assert_close(
        st_encode(tmp_path / "static", SENTENCES, prompt_name="query"), ours, atol=1e-6, rtol=1e-6
    )
    back = load_encoder(tmp_path / "static")
    assert isinstance(back, StaticEncoder) and back.normalize
    torch.testing.assert_close(back.encode(SENTENCES, prompt_name="query"), ours)


def test_random_init_and_validation(text_encoder):
    static = StaticEncoder(text_encoder.tokenizer, dim=8)
    assert static.encode(["the cat"]).shape == (1, 8)
    with pytest.raises(ValueError, match="give weights or dim"):
        StaticEncoder(text_encoder.tokenizer)
    with pytest.raises(ValueError, match="embedding rows for a vocabulary"):
        StaticEncoder(text_encoder.tokenizer, torch.zeros(3, 4))
