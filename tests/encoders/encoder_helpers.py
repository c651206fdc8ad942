"""Tiny random models and tokenizers for the encoder tests, built offline in a few hundred milliseconds."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    BertConfig,
    BertModel,
    BertTokenizerFast,
    GPT2Config,
    GPT2LMHeadModel,
    GPT2Model,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from tiny_models import SPECIAL_TOKENS
from tiny_models import tiny_bert_folder as build_tiny_bert_folder

_WORD_LIST = (
    "the a an cat cats dog dogs sat on mat hello world is big small red blue green query passage "
    "this that sentence means one word in of and to what where who why how runs ran fast slow"
)
WORDS = _WORD_LIST.split()
SENTENCES = [
    "the cat sat on the mat",
    "hello world",
    "a big red dog runs fast",
    "what is this sentence",
    "blue",
]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
EOS = "<|endoftext|>"


def bert_tokenizer(folder: Path) -> BertTokenizerFast:
    """A WordPiece tokenizer over ``WORDS`` (vocab.txt written in ``folder``)."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab = [*SPECIAL_TOKENS, *WORDS, "##s"]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return BertTokenizerFast(str(folder / "vocab.txt"), model_max_length=64)


def tiny_bert(tok: BertTokenizerFast, *, seed: int = 0, **config) -> BertModel:
    """A 2-layer, 32-wide random BERT over ``tok``'s vocabulary; ``config`` overrides ``BertConfig`` fields."""
    torch.manual_seed(seed)
    defaults = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
    return BertModel(BertConfig(vocab_size=len(tok), max_position_embeddings=64, **{**defaults, **config}))


def tiny_bert_folder(folder: Path, *, seed: int = 0) -> Path:
    """:func:`tiny_bert` and its tokenizer (:func:`bert_tokenizer`'s vocabulary) as a Hugging Face folder."""
    return build_tiny_bert_folder(folder, [*WORDS, "##s"], max_length=64, seed=seed, intermediate_size=64)


def bpe_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer (GPT-2 style) trained on a tiny corpus, with a chat template."""
    corpus = [*SENTENCES, " ".join(WORDS), 'This sentence: " means in one word:"', "Instruct: Query: <think>"] * 3
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=[EOS, "<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|embed|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, bos_token=EOS)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def tiny_gpt2(*, lm: bool = True, seed: int = 0) -> tuple[torch.nn.Module, PreTrainedTokenizerFast]:
    """A 2-layer, 32-wide random GPT-2 (LM head when ``lm``) and its BPE tokenizer."""
    tok = bpe_tokenizer()
    torch.manual_seed(seed)
    eos = tok.convert_tokens_to_ids(EOS)
    cfg = GPT2Config(
        vocab_size=len(tok), n_embd=32, n_layer=2, n_head=2, n_positions=128, bos_token_id=eos, eos_token_id=eos
    )
    model = GPT2LMHeadModel(cfg) if lm else GPT2Model(cfg)
    return model.eval(), tok


def tiny_llama(*, seed: int = 0) -> tuple[torch.nn.Module, PreTrainedTokenizerFast]:
    """A 2-layer, 32-wide random Llama causal LM with the BPE tokenizer."""
    tok = bpe_tokenizer()
    torch.manual_seed(seed)
    eos = tok.convert_tokens_to_ids(EOS)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=128,
        bos_token_id=eos,
        eos_token_id=eos,
        pad_token_id=eos,
    )
    return LlamaForCausalLM(cfg).eval(), tok


def sentence_transformer(path: Path):
    """``SentenceTransformer(path)`` on CPU, offline (skips the test when the package is missing)."""
    import pytest

    st = pytest.importorskip("sentence_transformers")
    return st.SentenceTransformer(str(path), device="cpu", local_files_only=True)


def st_encode(path: Path, texts: list[str], **kwargs) -> torch.Tensor:
    """Embeddings of ``texts`` by sentence-transformers from the folder at ``path``."""
    model = sentence_transformer(path)
    return torch.from_numpy(model.encode(texts, convert_to_numpy=True, **kwargs))
