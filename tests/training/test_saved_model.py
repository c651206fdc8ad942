"""What a trained ``final/`` is: the base model's inference length (not the training truncation), and the
numbers ``contrastkit eval`` prints for it are the ones a sentence-transformers user gets."""

import json
import os
from types import SimpleNamespace

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from tests.encoders.encoder_helpers import WORDS, tiny_bert_folder

from contrastkit.cli.main import main
from contrastkit.encoders import load_encoder
from contrastkit.evaluation.tasks import EvalOptions, retrieval_prompts
from contrastkit.training import load_config, train
from contrastkit.training.schema import ConfigError

BASE_LENGTH = 64  # the tiny tokenizer's model_max_length and the model's positions
TRAIN_LENGTH = 6
PROMPTS = {"query": "what is ", "passage": "passage : "}


def long_text(i: int, n: int = 20) -> str:
    """``n`` words: longer than TRAIN_LENGTH tokens, so truncation changes the embedding."""
    return " ".join(WORDS[(i * 5 + k * 3) % len(WORDS)] for k in range(n))


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A sentence-transformers folder (max_seq_length 64) with query / passage prompts."""
    root = tmp_path_factory.mktemp("base")
    load_encoder(tiny_bert_folder(root / "hf"), prompts=PROMPTS).save(root / "st")
    return root / "st"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "pairs.jsonl"
    rows = [{"anchor": long_text(i), "positive": long_text(i + 1, 12)} for i in range(16)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def run(tmp_path, base, data, *extra):
    config = load_config(
        None,
        [
            f"model.path={base}", f"model.max_length={TRAIN_LENGTH}", f"data.train={data}", "data.batch_size=8",
            "train.steps=2", "train.checkpoint_every=0", "train.progress=false", "optim.lr=1e-3",
            f"train.output_dir={tmp_path / 'run'}", *extra,
        ],
    )  # fmt: skip
    return train(config).final_model


def saved_length(folder) -> int:
    return json.loads((folder / "sentence_bert_config.json").read_text())["max_seq_length"]


@pytest.fixture(scope="module")
def final(tmp_path_factory, base, data):
    return run(tmp_path_factory.mktemp("trained"), base, data)


def test_the_training_length_does_not_leak_into_the_saved_model(final) -> None:
    assert saved_length(final) == BASE_LENGTH
    assert load_encoder(final).max_length == BASE_LENGTH


def test_save_max_length_sets_the_saved_length(tmp_path, base, data) -> None:
    assert saved_length(run(tmp_path, base, data, "model.save_max_length=16")) == 16


@pytest.mark.parametrize(
    ("value", "message"), [(100, "exceeds the model's 64 position embeddings"), (0, "must be > 0")]
)
def test_a_bad_save_max_length_names_the_key(tmp_path, base, data, value, message) -> None:
    with pytest.raises(ConfigError, match=rf"model\.save_max_length.*{message}"):
        run(tmp_path, base, data, f"model.save_max_length={value}")
    assert not (tmp_path / "run" / "final").exists()


def st_model(folder):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(folder), device="cpu")


def test_eval_of_a_saved_folder_gives_what_sentence_transformers_users_get(final, tmp_path) -> None:
    pairs = [(long_text(i), long_text(3 * i + 1, 14), float(i % 5)) for i in range(12)]
    (tmp_path / "sts").mkdir()
    lines = ["sentence1\tsentence2\tscore", *(f"{a}\t{b}\t{s}" for a, b, s in pairs)]
    (tmp_path / "sts" / "test.tsv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "sts.json"
    assert main(["eval", str(final), "--task", "sts", "--data", str(tmp_path / "sts"), "--json", str(out)]) == 0
    theirs = st_model(final)
    assert theirs.max_seq_length == BASE_LENGTH
    a = theirs.encode([p[0] for p in pairs], convert_to_tensor=True)
    b = theirs.encode([p[1] for p in pairs], convert_to_tensor=True)
    expected = spearmanr(torch.cosine_similarity(a, b).numpy(), [p[2] for p in pairs]).statistic
    assert json.loads(out.read_text())["metrics"]["spearman"] == pytest.approx(expected, abs=1e-6)


def test_eval_prompts_and_embeddings_are_sentence_transformers_own(final) -> None:
    ours, theirs = load_encoder(final), st_model(final)
    query, doc = retrieval_prompts(ours, EvalOptions())
    texts = [long_text(i) for i in range(6)]
    for name, st_encode in ((query, theirs.encode_query), (doc, theirs.encode_document)):
        mine = ours.encode(texts, prompt_name=name).numpy()
        np.testing.assert_allclose(mine, st_encode(texts), atol=1e-5)
    np.testing.assert_allclose(ours.encode(texts).numpy(), theirs.encode(texts), atol=1e-5)


@pytest.mark.parametrize("name", ["document", "passage", "corpus"])
def test_retrieval_takes_the_document_prompt_sentence_transformers_takes(name) -> None:
    encoder = SimpleNamespace(prompts={"query": "q: ", name: "d: ", "doc": "other: "})
    assert retrieval_prompts(encoder, EvalOptions()) == ("query", name)


def test_a_decoder_loaded_at_a_shorter_length_saves_its_own(tmp_path) -> None:
    from tests.encoders.encoder_helpers import tiny_gpt2

    from contrastkit.encoders.decoder import DecoderEncoder

    model, tok = tiny_gpt2(lm=False)
    DecoderEncoder(model, tok, save_max_length=100).save(tmp_path / "dec")
    short = load_encoder(tmp_path / "dec", max_length=12)
    assert short.max_length == 12 and short.save_max_length == 100
    short.save(tmp_path / "again")
    assert saved_length(tmp_path / "again") == 100 and load_encoder(tmp_path / "again").max_length == 100


def test_save_max_length_reaches_the_transformer_under_a_projection_head(tmp_path, base) -> None:
    from contrastkit.encoders.heads import ProjectionHead
    from contrastkit.training.build import set_save_max_length

    head = ProjectionHead(load_encoder(base, max_length=TRAIN_LENGTH), dims=(8,))
    set_save_max_length(head, 20, "model.save_max_length")
    head.save(tmp_path / "head")
    assert saved_length(tmp_path / "head") == 20
