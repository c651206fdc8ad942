"""Training a cross-encoder (model.kind: cross): group losses, GradCache parity, refused settings, final/ folder."""

from __future__ import annotations

import json
import math

import pytest
import torch
from tests.encoders.encoder_helpers import tiny_bert_folder

from contrastkit.data.examples import Example, collate
from contrastkit.encoders.cross import CrossEncoderModel, load_cross_encoder
from contrastkit.objectives import get
from contrastkit.objectives.rerank import group_targets
from contrastkit.training import load_config, train
from contrastkit.training.batchloss import BatchLoss
from contrastkit.training.config import ObjectiveConfig, ScaleConfig
from contrastkit.training.schema import ConfigError

EXAMPLES = [
    Example("the cat sat", ("the cat sat on the mat",), ("a dog runs fast", "small red cat")),
    Example("a big red dog", ("a big red dog runs", "the dog is big"), ("blue",)),
    Example("hello", ("hello world",), ()),
    Example("what is this", ("what is this sentence",), ("the small cat", "red", "slow dogs")),
]


@pytest.fixture(scope="module")
def body(tmp_path_factory):
    return tiny_bert_folder(tmp_path_factory.mktemp("body"))


def _cross(body) -> CrossEncoderModel:
    return load_cross_encoder(body, seed=0).eval()  # eval: no dropout, so two computations agree exactly


def _loss(name: str, **scale) -> BatchLoss:
    return BatchLoss(ObjectiveConfig(name=name), ScaleConfig(**scale), dim=1, pairs=True)


def _grads(model) -> list[torch.Tensor]:
    return [p.grad.clone() for p in model.parameters() if p.grad is not None]


@pytest.mark.parametrize("name", ["infonce", "rerank_bce", "lsepair", "url"])
def test_pair_loss_equals_the_objective_on_the_group_matrix(body, name):
    """Loop reference: score every example's documents one by one, lay them out by hand, apply the objective."""
    cross = _cross(body)
    batch = collate(EXAMPLES)
    loss = _loss(name)(cross, cross, batch)
    k = max(len(ex.positives) + len(ex.negatives) for ex in EXAMPLES)
    yes_no = name == "url"
    matrix = torch.zeros(len(EXAMPLES), k, 2) if yes_no else torch.zeros(len(EXAMPLES), k)
    with torch.no_grad():
        for i, ex in enumerate(EXAMPLES):
            for j, doc in enumerate((*ex.positives, *ex.negatives)):
                matrix[i, j] = cross(cross.tokenize([(ex.anchor, doc)], yes_no=yes_no))[0]
    sizes = torch.tensor([len(ex.positives) + len(ex.negatives) for ex in EXAMPLES])
    targets = group_targets(torch.tensor([len(ex.positives) for ex in EXAMPLES]), k, sizes)
    assert loss.item() == pytest.approx(get(name)(matrix, targets).item(), abs=1e-5)


@pytest.mark.parametrize("scale", [{"gradcache_chunk": 3}, {"sub_batch": 2}])
def test_gradcache_and_sub_batches_give_the_plain_gradient(body, scale):
    cross = _cross(body)
    batch = collate(EXAMPLES)
    plain = _loss("infonce")(cross, cross, batch)
    expected = _grads(cross)
    cross.zero_grad()
    other = _loss("infonce", **scale)(cross, cross, batch)
    assert other.item() == pytest.approx(plain.item(), abs=1e-5)
    for got, want in zip(_grads(cross), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "name,scale,key",
    [
        ("clip", {}, "objective.name"),
        ("simcse", {}, "objective.name"),
        ("infonce", {"queue_size": 8}, "scale.queue_size"),
        ("infonce", {"tile_size": 2}, "scale.tile_size"),
    ],
)
def test_settings_a_cross_encoder_cannot_use_are_refused(name, scale, key):
    with pytest.raises(ConfigError) as err:
        _loss(name, **scale)
    assert err.value.path == key


def test_contrastkit_train_writes_a_cross_encoder_folder(body, tmp_path):
    data = tmp_path / "train.jsonl"
    rows = [{"anchor": e.anchor, "positive": list(e.positives), "negative": list(e.negatives)} for e in EXAMPLES]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    overrides = [
        f"model.path={body}", "model.kind=cross", f"data.train={data}", "data.kind=triplet", "data.batch_size=2",
        "objective.name=rerank_bce", "objective.temperature=1.0", "optim.lr=1e-3", "train.steps=4",
        f"train.output_dir={tmp_path / 'run'}", "train.progress=false", "train.tensorboard=false",
        "train.checkpoint_every=0",
    ]  # fmt: skip
    result = train(load_config(None, overrides))
    assert result.steps == 4 and math.isfinite(result.loss)
    trained = CrossEncoderModel.from_folder(result.final_model)
    pairs = [("the cat sat", "the cat sat on the mat"), ("hello", "blue")]
    st = pytest.importorskip("sentence_transformers")
    theirs = st.CrossEncoder(str(result.final_model), device="cpu", local_files_only=True).predict(pairs)
    assert torch.allclose(torch.as_tensor(theirs), trained.score(pairs), atol=1e-5)
    assert not torch.allclose(trained.score(pairs), load_cross_encoder(body, seed=0).score(pairs))


def test_embedding_evaluations_are_refused_for_a_cross_encoder_before_training(body, tmp_path):
    """eval.sts / eval.retrieval embed texts, which a cross-encoder does not: a ConfigError at build time, not an
    AttributeError at the first evaluation."""
    data = tmp_path / "train.jsonl"
    rows = [{"anchor": e.anchor, "positive": list(e.positives), "negative": list(e.negatives)} for e in EXAMPLES]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    sts = tmp_path / "sts.tsv"
    sts.write_text("sentence1\tsentence2\tscore\na cat\ta small cat\t4.5\na dog\tthe sea\t0.5\nred\tblue\t1.0\n")
    overrides = [
        f"model.path={body}", "model.kind=cross", f"data.train={data}", "data.kind=triplet", "data.batch_size=2",
        "objective.name=rerank_bce", "objective.temperature=1.0", "train.steps=2", f"eval.sts.path={sts}",
        f"train.output_dir={tmp_path / 'run'}", "train.progress=false", "train.tensorboard=false",
        "train.checkpoint_every=0",
    ]  # fmt: skip
    with pytest.raises(ConfigError) as err:
        train(load_config(None, overrides))
    assert err.value.path == "eval.sts" and "cross-encoder" in str(err.value)
