"""DualEncoder: side tags, dispatch, encode, save/load, and parity with a single encoder in the training loss."""

from __future__ import annotations

import pytest
import torch
from encoder_helpers import SENTENCES, st_encode, tiny_bert_folder

from contrastkit.data.examples import Example, collate
from contrastkit.encoders import DualEncoder, ModelFolderError, StaticEncoder, load_encoder, split_features
from contrastkit.encoders.dual import SIDE_KEY, is_dual_folder, tokenize_side, towers
from contrastkit.training.batchloss import BatchLoss
from contrastkit.training.config import ObjectiveConfig, ScaleConfig


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return tiny_bert_folder(tmp_path_factory.mktemp("bert") / "bert")


@pytest.fixture(scope="module")
def text(bert):
    return load_encoder(bert, prompts={"q": "what "})


@pytest.fixture(scope="module")
def dual(text):
    static = StaticEncoder.from_transformer(text, prompts={"d": "a "})
    return DualEncoder(text, static).eval()


def test_tokenize_tags_and_forward_dispatch(dual, text) -> None:
    a = dual.tokenize(SENTENCES, side="anchor")
    c = dual.tokenize(SENTENCES, side="candidate")
    assert a[SIDE_KEY].tolist() == [0] * len(SENTENCES) and c[SIDE_KEY].tolist() == [1] * len(SENTENCES)
    assert set(a) - {SIDE_KEY} == set(text.tokenize(SENTENCES))  # the tower's own keys, unrenamed
    with torch.no_grad():
        assert torch.equal(dual(a), text(text.tokenize(SENTENCES)))
        assert torch.equal(dual(c), dual.candidate(dual.candidate.tokenize(SENTENCES)))
        assert not torch.allclose(dual(a), dual(c))
        # GradCache chunks keep the tag
        chunks = split_features(c, 2)
        assert torch.allclose(torch.cat([dual(ch) for ch in chunks]), dual(c), atol=1e-6)
    mixed = dict(a)
    mixed[SIDE_KEY] = torch.tensor([0, 1, 0, 0, 0])
    with pytest.raises(ValueError, match="mixes anchor and candidate"):
        dual(mixed)
    with pytest.raises(KeyError, match="dual_side"):
        dual(text.tokenize(SENTENCES))
    with pytest.raises(ValueError, match="unknown side 'query'"):
        dual.tokenize(SENTENCES, side="query")


def test_encode_per_side_and_prompts(dual, text) -> None:
    assert torch.equal(dual.encode(SENTENCES), text.encode(SENTENCES))
    assert torch.equal(dual.encode(SENTENCES, side="candidate"), dual.candidate.encode(SENTENCES))
    # prompt names from either tower
    assert torch.equal(dual.encode(SENTENCES, prompt_name="q"), text.encode(SENTENCES, prompt="what "))
    assert torch.equal(
        dual.encode(SENTENCES, prompt_name="d", side="candidate"), dual.candidate.encode(SENTENCES, prompt="a ")
    )
    assert dual.dim == 32 and towers(dual) == (dual.anchor, dual.candidate) and towers(text) == (text, text)


def test_tokenize_side_leaves_single_encoders_alone(text) -> None:
    plain = text.tokenize(SENTENCES, prompt="what ")
    for side in ("anchor", "candidate"):
        got = tokenize_side(text, SENTENCES, side, "what ")
        assert got.keys() == plain.keys() and all(torch.equal(got[k], plain[k]) for k in plain)


def test_dimensions_must_match(text) -> None:
    other = StaticEncoder(text.tokenizer, dim=16)
    with pytest.raises(ValueError, match="anchor 32, candidate 16"):
        DualEncoder(text, other)


def test_save_and_load(dual, tmp_path) -> None:
    dual.save(tmp_path / "dual")
    assert is_dual_folder(tmp_path / "dual") and not is_dual_folder(tmp_path)
    assert sorted(p.name for p in (tmp_path / "dual").iterdir()) == ["anchor", "candidate", "contrastkit_dual.json"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left
    loaded = load_encoder(tmp_path / "dual")
    assert isinstance(loaded, DualEncoder)
    for side in ("anchor", "candidate"):
        assert torch.allclose(loaded.encode(SENTENCES, side=side), dual.encode(SENTENCES, side=side), atol=1e-6)
    # each tower is a sentence-transformers folder of its own
    assert torch.allclose(st_encode(tmp_path / "dual" / "anchor", SENTENCES), dual.encode(SENTENCES), atol=1e-5)
    dual.save(tmp_path / "dual")  # overwriting is atomic too
    assert isinstance(load_encoder(tmp_path / "dual"), DualEncoder)
    with pytest.raises(ModelFolderError, match="pooling cannot apply to both towers"):
        load_encoder(tmp_path / "dual", pooling="cls")
    (tmp_path / "dual" / "contrastkit_dual.json").write_text('{"anchor": "a"}')
    with pytest.raises(ModelFolderError, match=r"contrastkit_dual\.json: expected"):
        load_encoder(tmp_path / "dual")


PAIRS = [
    Example("the cat sat on the mat", ("a cat sat",), ("the dog ran",)),
    Example("hello world", ("hello big world",), ("what is this",)),
    Example("a big red dog runs fast", ("a dog runs",), ("blue green",)),
    Example("what is this sentence", ("this sentence",), ("the mat",)),
]


def _loss_and_grads(encoder, params, name: str, chunk: int | None) -> tuple[torch.Tensor, list[torch.Tensor]]:
    loss_fn = BatchLoss(ObjectiveConfig(name=name, temperature=0.05), ScaleConfig(gradcache_chunk=chunk), dim=32)
    for p in params:
        p.grad = None
    torch.manual_seed(123)  # the same dropout masks on both paths
    loss = loss_fn(encoder, encoder, collate(PAIRS))
    return loss, [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in params]


@pytest.mark.parametrize("name", ["infonce", "clip"])
@pytest.mark.parametrize("chunk", [None, 3])
def test_shared_tower_dual_matches_single_encoder(bert, name: str, chunk: int | None) -> None:
    text = load_encoder(bert).train()
    dual = DualEncoder(text, text)
    params = list(text.parameters())
    assert list(dual.parameters()) == params  # one shared tower: the same parameters
    single_loss, single_grads = _loss_and_grads(text, params, name, chunk)
    dual_loss, dual_grads = _loss_and_grads(dual, params, name, chunk)
    assert torch.isfinite(single_loss) and torch.equal(single_loss, dual_loss)
    assert any(g.abs().sum() > 0 for g in single_grads)
    for a, b in zip(single_grads, dual_grads, strict=True):
        assert torch.allclose(a, b, atol=1e-7, rtol=1e-6)


@pytest.mark.parametrize("name", ["siglip", "clip"])
def test_learnable_temperature_and_bias_get_gradients_through_both_towers(bert, name: str) -> None:
    text = load_encoder(bert).train()
    dual = DualEncoder(text, StaticEncoder.from_transformer(text))
    hparams = {} if name == "siglip" else {"learnable_temperature": True}
    loss_fn = BatchLoss(ObjectiveConfig(name=name, hparams=hparams), ScaleConfig(), dim=32)
    learned = [p for p in loss_fn.parameters() if p.requires_grad]
    assert len(learned) == (2 if name == "siglip" else 1)  # log-scale (and SigLIP's bias)
    loss = loss_fn(dual, dual, collate(PAIRS))
    assert torch.isfinite(loss)
    for p in [*learned, dual.anchor.model.embeddings.word_embeddings.weight, dual.candidate.embedding.weight]:
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_retrieval_task_uses_the_candidate_tower_for_documents(dual, tmp_path) -> None:
    import json

    from contrastkit.evaluation.retrieval import evaluate_retrieval
    from contrastkit.evaluation.tasks import run_task

    docs = [*SENTENCES, "the dog sat", "hello cat"][:6]
    queries = [d.split()[-1] for d in docs]
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(docs))
    )
    (tmp_path / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": f"q{i}", "text": t}) + "\n" for i, t in enumerate(queries))
    )
    (tmp_path / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(6))
    )
    got = run_task("retrieval", dual, tmp_path).metrics
    corpus, qs = {f"d{i}": t for i, t in enumerate(docs)}, {f"q{i}": t for i, t in enumerate(queries)}
    qrels = {f"q{i}": {f"d{i}": 1} for i in range(6)}
    want = evaluate_retrieval(dual.anchor, qs, corpus, qrels, doc_encoder=dual.candidate).metrics
    one_tower = evaluate_retrieval(dual.anchor, qs, corpus, qrels).metrics
    assert got["ndcg@10"] == pytest.approx(want["ndcg@10"])
    assert one_tower != want  # the check can fail: the towers embed documents differently
