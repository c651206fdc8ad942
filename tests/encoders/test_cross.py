"""Cross-encoders: classifier scores, sentence-transformers CrossEncoder round trip, decoder yes/no rerankers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tests.encoders.encoder_helpers import EOS, SENTENCES, WORDS, tiny_bert_folder
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from contrastkit.encoders.cross import (
    CrossEncoderModel,
    DecoderReranker,
    RerankPrompt,
    load_cross_encoder,
)
from contrastkit.encoders.io import ModelFolderError

PAIRS = [
    ("what is this sentence", "the cat sat on the mat"),
    ("hello world", "hello world"),
    ("a big red dog", "the small blue cat runs slow " * 6),
    ("where", "blue"),
]


@pytest.fixture(scope="module")
def body(tmp_path_factory) -> Path:
    return tiny_bert_folder(tmp_path_factory.mktemp("body"))


@pytest.fixture(scope="module")
def cross(body) -> CrossEncoderModel:
    return load_cross_encoder(body, max_length=24, seed=3)


def test_new_head_is_seeded_and_leaves_global_rng(body):
    torch.manual_seed(0)
    state = torch.get_rng_state()
    a = CrossEncoderModel.from_body(body, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    b = CrossEncoderModel.from_body(body, seed=3)
    c = CrossEncoderModel.from_body(body, seed=4)
    assert torch.equal(a.score(PAIRS), b.score(PAIRS))
    assert not torch.equal(a.score(PAIRS), c.score(PAIRS))


def test_padding_free_forward_equals_the_padded_model(cross):
    features = cross.tokenize(PAIRS)
    cross.eval()
    with torch.no_grad():
        padded = cross.model(**features).logits.squeeze(-1)
        assert cross.unpad
        assert torch.allclose(cross(features), padded, atol=1e-5)


def test_score_is_order_and_batch_independent_and_keeps_the_mode(cross):
    cross.train()
    full = cross.score(PAIRS, batch_size=8)
    assert cross.training
    one = torch.cat([cross.score([p], batch_size=1) for p in PAIRS])
    assert full.shape == (len(PAIRS),) and full.dtype == torch.float32
    assert torch.allclose(full, one, atol=1e-5)
    assert torch.allclose(cross.score(PAIRS[::-1]), full.flip(0), atol=1e-5)


def test_truncation_bounds_every_pair(cross):
    assert cross.tokenize(PAIRS)["input_ids"].shape[1] <= 24


def test_sentence_transformers_cross_encoder_gives_the_same_scores(cross, tmp_path):
    st = pytest.importorskip("sentence_transformers")
    cross.save(tmp_path / "ce")
    theirs = st.CrossEncoder(str(tmp_path / "ce"), device="cpu", local_files_only=True).predict(PAIRS)
    assert torch.allclose(torch.as_tensor(theirs), cross.score(PAIRS), atol=1e-5)


def test_save_and_load_round_trip(cross, tmp_path):
    cross.save(tmp_path / "ce")
    back = CrossEncoderModel.from_folder(tmp_path / "ce")
    assert type(back) is CrossEncoderModel and back.max_length == 24
    assert torch.allclose(back.score(PAIRS), cross.score(PAIRS), atol=1e-6)
    assert not list((tmp_path / "ce").glob("*.bin"))


def test_an_encoder_body_is_not_a_saved_cross_encoder(body):
    with pytest.raises(ModelFolderError, match="not a cross-encoder"):
        CrossEncoderModel.from_folder(body)


def test_gradient_reaches_body_and_head(cross):
    cross.train()
    cross.zero_grad()
    cross(cross.tokenize(PAIRS)).sum().backward()
    assert cross.model.classifier.weight.grad is not None
    assert cross.model.bert.embeddings.word_embeddings.weight.grad.abs().sum() > 0
    cross.zero_grad()
    cross.eval()


def test_tagged_features_give_yes_no_logits(cross, decoder):
    cross.eval()
    with torch.no_grad():
        pair = cross(cross.tokenize(PAIRS, yes_no=True))
        assert pair.shape == (len(PAIRS), 2)
        assert torch.allclose(pair[:, 0], cross(cross.tokenize(PAIRS)), atol=1e-6) and not pair[:, 1].any()
        logits = decoder(decoder.tokenize(PAIRS, yes_no=True))
        assert torch.allclose(logits[:, 0] - logits[:, 1], decoder(decoder.tokenize(PAIRS)), atol=1e-6)
        assert torch.allclose(cross.score(PAIRS), cross(cross.tokenize(PAIRS)), atol=1e-5)


def test_bad_pairs_are_named():
    with pytest.raises(ValueError, match="pair 1"):
        from contrastkit.encoders.cross import _split_pairs

        _split_pairs([("a", "b"), ("only one",)])


# ---------------------------------------------------------------------------- decoder rerankers


def yes_no_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer whose vocabulary has ' yes' and ' no' as single tokens."""
    corpus = [*SENTENCES, " ".join(WORDS), "Relevant (yes or no): yes no Query: Document:"] * 5
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=[EOS], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, bos_token=EOS)


@pytest.fixture(scope="module")
def decoder() -> DecoderReranker:
    tok = yes_no_tokenizer()
    torch.manual_seed(0)
    eos = tok.convert_tokens_to_ids(EOS)
    cfg = GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=2, n_positions=256, eos_token_id=eos)
    return DecoderReranker(GPT2LMHeadModel(cfg).eval(), tok, max_length=40)


def test_decoder_score_is_yes_minus_no_of_the_next_token(decoder):
    """Loop oracle: the full model's logits at the last real token of each prompt, unpadded, one at a time."""
    scores = decoder.score(PAIRS)
    yes, no = decoder.answer_ids
    for (q, d), got in zip(PAIRS, scores, strict=True):
        ids = decoder.tokenize([(q, d)])["input_ids"]
        with torch.no_grad():
            logits = decoder.model(input_ids=ids).logits[0, -1]
        assert got.item() == pytest.approx((logits[yes] - logits[no]).item(), abs=1e-4)


def test_decoder_prompt_holds_instruction_query_document_and_fits(decoder):
    ids = decoder.tokenize(PAIRS)["input_ids"]
    assert ids.shape[1] <= 40
    text = decoder.tokenizer.decode(decoder.tokenize([("what is this sentence", "blue")])["input_ids"][0])
    assert text == RerankPrompt().render("what is this sentence", "blue")


def test_decoder_save_load_round_trip(decoder, tmp_path):
    prompt = RerankPrompt(instruction="Is the cat relevant?")
    custom = DecoderReranker(decoder.model, decoder.tokenizer, prompt=prompt, max_length=40)
    custom.save(tmp_path / "lm")
    back = load_cross_encoder(tmp_path / "lm")
    assert isinstance(back, DecoderReranker) and back.prompt == prompt
    assert torch.allclose(back.score(PAIRS), custom.score(PAIRS), atol=1e-5)


def test_answer_words_must_be_single_tokens(decoder):
    with pytest.raises(ValueError, match="exactly one"):
        DecoderReranker(decoder.model, decoder.tokenizer, prompt=RerankPrompt(yes=" absolutely yes"))
