"""Shared pieces of the diagnostics tests: a tiny random BERT text encoder and small sentence sets, built offline."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pathlib import Path

import torch
from transformers import BertConfig, BertModel, BertTokenizerFast

from contrastkit.encoders import TextEncoder

# fmt: off
WORDS = [
    "the", "a", "is", "of", "and", "to", "in", "on", "cat", "dog", "mat", "sat",
    "runs", "fast", "red", "blue", "big", "small", "bird", "sings", "house", "tree", "green", "river",
    "flows", "man", "woman", "plays", "guitar", "child", "reads", "book",
]
# fmt: on
SENTENCES = [
    "the cat sat on the mat",
    "a dog runs fast",
    "the red bird sings in the tree",
    "a big house is on the river",
    "the man plays the guitar",
    "a woman reads a book",
    "the child plays in the green house",
    "a small cat sat on a big mat",
    "the river flows",
    "a blue bird sings",
    "the dog and the cat",
    "a man reads to the child",
]
PAIRS = [(SENTENCES[i], SENTENCES[(i + 1) % len(SENTENCES)]) for i in range(len(SENTENCES))]


def tiny_bert_folder(folder: Path, *, seed: int = 0) -> Path:
    """A 2-layer, 32-wide random BERT with a WordPiece tokenizer over ``WORDS``, as a Hugging Face folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tokenizer = BertTokenizerFast(str(folder / "vocab.txt"), model_max_length=64)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def tiny_encoder(folder: Path) -> TextEncoder:
    """:func:`tiny_bert_folder` loaded as a mean-pooled, normalised :class:`TextEncoder`."""
    return TextEncoder.from_folder(tiny_bert_folder(folder))
