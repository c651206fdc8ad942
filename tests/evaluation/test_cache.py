"""The embedding cache never re-encodes a (model, prompt, text): encoder calls and encoded texts are counted."""

import warnings

import pytest
import torch
from task_helpers import VectorEncoder

from contrastkit.evaluation.cache import (
    CachedEncoder,
    EmbeddingCache,
    encode_cached,
    model_fingerprint,
    text_key,
)
from contrastkit.evaluation.retrieval import evaluate_retrieval

TABLE = {
    "a": [1.0, 0.0],
    "b": [0.0, 1.0],
    "c": [1.0, 1.0],
    "d": [2.0, -1.0],
    "q: a": [3.0, 3.0],
    "q: b": [-1.0, 0.5],
}


def _encoder() -> VectorEncoder:
    return VectorEncoder(TABLE, prompts={"query": "q: "})


def _expected(texts, prompt=""):
    return torch.tensor([TABLE[prompt + t] for t in texts])


def test_same_texts_are_encoded_once() -> None:
    cache, enc = EmbeddingCache(), _encoder()
    first = cache.encode(enc, ["a", "b", "a", "c"], batch_size=2)
    assert torch.equal(first, _expected(["a", "b", "a", "c"]))
    assert enc.encode_calls == [["a", "b", "c"]]  # the duplicate "a" is encoded once
    again = cache.encode(enc, ["c", "a", "b"])
    assert torch.equal(again, _expected(["c", "a", "b"]))
    assert len(enc.encode_calls) == 1  # no new call at all
    assert cache.stats.encoder_calls == 1 and cache.stats.misses == 3 and cache.stats.hits == 4


def test_only_missing_texts_are_encoded() -> None:
    cache, enc = EmbeddingCache(), _encoder()
    cache.encode(enc, ["a", "b"])
    out = cache.encode(enc, ["d", "a", "c", "d"])
    assert torch.equal(out, _expected(["d", "a", "c", "d"]))
    assert enc.encode_calls == [["a", "b"], ["d", "c"]]
    assert len(cache) == 4


def test_prompt_is_part_of_the_key() -> None:
    cache, enc = EmbeddingCache(), _encoder()
    plain = cache.encode(enc, ["a", "b"])
    prompted = cache.encode(enc, ["a", "b"], prompt_name="query")
    assert torch.equal(plain, _expected(["a", "b"])) and torch.equal(prompted, _expected(["a", "b"], "q: "))
    literal = cache.encode(enc, ["b"], prompt="q: ")  # the same resolved prompt text: served from the cache
    assert torch.equal(literal, _expected(["b"], "q: "))
    assert enc.encode_calls == [["a", "b"], ["q: a", "q: b"]]
    with pytest.raises(KeyError, match="unknown prompt name"):
        cache.encode(enc, ["a"], prompt_name="nope")
    assert text_key(None, "x") == text_key("", "x") != text_key("x", "")


def test_model_identity_is_the_weights_not_the_object() -> None:
    cache = EmbeddingCache()
    one, two = _encoder(), _encoder()
    assert model_fingerprint(one) == model_fingerprint(two)
    cache.encode(one, ["a", "b"])
    cache.encode(two, ["a", "b"])  # same class, settings and weights: shared entries
    assert len(one.encode_calls) == 1 and two.encode_calls == []

    changed = _encoder()
    with torch.no_grad():
        changed.table[0, 0] = 5.0  # in place: the fingerprint memo must notice
    out = cache.encode(changed, ["a", "b"])
    assert changed.encode_calls == [["a", "b"]] and out[0, 0] == 5.0
    with torch.no_grad():
        one.table.mul_(2.0)  # the same object, trained in place: its old entries are not reused
    assert torch.equal(cache.encode(one, ["b"]), 2 * _expected(["b"]))
    assert len(one.encode_calls) == 2


def test_memory_keeps_the_most_recently_used_models() -> None:
    cache = EmbeddingCache(max_models=1)
    one, two = _encoder(), VectorEncoder({k: [2 * x for x in v] for k, v in TABLE.items()})
    cache.encode(one, ["a"])
    cache.encode(two, ["a"])  # evicts one's rows
    cache.encode(one, ["a"])
    assert one.encode_calls == [["a"], ["a"]] and len(cache) == 1
    big = EmbeddingCache(max_models=2)
    for encoder in (one, two, one, two):
        big.encode(encoder, ["b"])
    assert big.stats.encoder_calls == 2
    with pytest.raises(ValueError, match="max_models"):
        EmbeddingCache(max_models=0)


def test_disk_cache_is_reused_across_cache_objects(tmp_path) -> None:
    enc = _encoder()
    EmbeddingCache(tmp_path).encode(enc, ["a", "b", "c"])
    shards = list(tmp_path.rglob("*.safetensors"))
    assert len(shards) == 1 and not list(tmp_path.rglob("*.tmp"))

    fresh_encoder, fresh_cache = _encoder(), EmbeddingCache(tmp_path)  # "a new process"
    out = fresh_cache.encode(fresh_encoder, ["c", "a"])
    assert torch.equal(out, _expected(["c", "a"]))
    assert fresh_encoder.encode_calls == [] and fresh_cache.stats.disk_rows_loaded == 3
    fresh_cache.encode(fresh_encoder, ["d"])
    assert fresh_encoder.encode_calls == [["d"]] and len(list(tmp_path.rglob("*.safetensors"))) == 2


def test_fixed_model_key_on_disk(tmp_path) -> None:
    enc = _encoder()
    CachedEncoder(enc, EmbeddingCache(tmp_path), model_key="my model/v1").encode(["a", "b"])
    other = _encoder()
    with torch.no_grad():
        other.table.zero_()  # different weights, same fixed key: the key is the caller's promise
    out = CachedEncoder(other, EmbeddingCache(tmp_path), model_key="my model/v1").encode(["b"])
    assert torch.equal(out, _expected(["b"])) and other.encode_calls == []
    assert [p.parent.parent for p in tmp_path.rglob("*.safetensors")] == [tmp_path]


def test_damaged_shard_is_skipped_with_a_warning(tmp_path) -> None:
    enc = _encoder()
    EmbeddingCache(tmp_path).encode(enc, ["a"])
    shard = next(tmp_path.rglob("*.safetensors"))
    shard.write_bytes(b"not a safetensors file")
    fresh = _encoder()
    with pytest.warns(UserWarning, match="unreadable shard"):
        out = EmbeddingCache(tmp_path).encode(fresh, ["a"])
    assert torch.equal(out, _expected(["a"])) and fresh.encode_calls == [["a"]]


def test_cached_encoder_wraps_any_encode_user() -> None:
    cache, enc = EmbeddingCache(), _encoder()
    wrapped = CachedEncoder(enc, cache)
    assert wrapped.dim == 2 and wrapped.prompts == {"query": "q: "} and wrapped.table is enc.table
    corpus = {"d1": "a", "d2": "b", "d3": "c"}
    queries = {"q1": "a", "q2": "b"}
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}}
    first = evaluate_retrieval(wrapped, queries, corpus, qrels, k_values=(1, 3), query_prompt_name="query")
    second = evaluate_retrieval(wrapped, queries, corpus, qrels, k_values=(1, 3), query_prompt_name="query")
    assert first.metrics == second.metrics
    assert enc.encode_calls == [["q: a", "q: b"], ["a", "b", "c"]]  # the second evaluation encoded nothing
    assert CachedEncoder(wrapped).cache is cache  # re-wrapping keeps the cache


def test_encode_cached_keeps_nothing_without_a_cache_and_handles_empty_input() -> None:
    """Caching is opt-in: without a cache each call encodes (duplicates inside a call once), with one never twice."""
    enc = _encoder()
    assert torch.equal(encode_cached(enc, ["a", "b", "a"]), _expected(["a", "b", "a"]))
    encode_cached(enc, ["a"])
    assert enc.encode_calls == [["a", "b"], ["a"]]
    cache = EmbeddingCache()
    encode_cached(enc, ["c"], cache=cache)
    encode_cached(enc, ["c"], cache=cache)
    assert enc.encode_calls[2:] == [["c"]]
    assert cache.encode(enc, []).shape == (0, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(encode_cached(CachedEncoder(enc, EmbeddingCache()), ["b"]), _expected(["b"]))


def test_a_loaded_model_is_named_by_its_folder_until_it_changes(tmp_path) -> None:
    """The fingerprint of an unchanged loaded model reads its folder's files (once), never its weights; an edit
    after loading, or a changed file, gives another identity."""
    from contrastkit.encoders import load_encoder
    from contrastkit.encoders.identity import source_identity
    from tiny_models import tiny_bert_folder

    folder = tiny_bert_folder(tmp_path / "m", ["alpha", "beta"])
    one, two = load_encoder(folder), load_encoder(folder)
    assert source_identity(one) is not None and source_identity(one) == source_identity(two)
    key = model_fingerprint(one)
    assert model_fingerprint(two) == key
    with torch.no_grad():
        next(two.parameters()).mul_(2.0)
    assert source_identity(two) is None and model_fingerprint(two) != key  # edited after loading: hash the tensors
    (folder / "config.json").write_text((folder / "config.json").read_text() + " ")
    assert model_fingerprint(load_encoder(folder)) != key  # the folder changed


def test_wrong_row_count_from_an_encoder_is_an_error() -> None:
    class Broken:
        prompts = None

        def encode(self, texts, **kwargs):
            return torch.zeros(len(texts) + 1, 2)

    with pytest.raises(ValueError, match="2 embeddings for 1 texts"):
        EmbeddingCache().encode(Broken(), ["x"])
