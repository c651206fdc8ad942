"""The one builder of the tiny random BERT folders that tests train, load and evaluate (offline, well under a second).

Importable from every test folder: ``tests/conftest.py`` puts this folder on ``sys.path``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def tiny_bert_folder(
    folder: str | Path,
    words: Sequence[str],
    *,
    max_length: int = 32,
    seed: int = 0,
    **config: object,
) -> Path:
    """A random BERT and a WordPiece tokenizer over ``words``, saved as a Hugging Face folder.

    Defaults: 2 layers, 32 wide, 2 heads, feed-forward 37, dropout on, ``max_length``
    positions (and the tokenizer's ``model_max_length``); ``config`` overrides
    ``BertConfig`` fields. Weights are drawn after ``torch.manual_seed(seed)``.
    """
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join([*SPECIAL_TOKENS, *words]) + "\n")
    tokenizer = BertTokenizerFast(str(folder / "vocab.txt"), model_max_length=max_length)
    torch.manual_seed(seed)
    defaults: dict[str, object] = {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 37,
        "max_position_embeddings": max_length,
    }
    BertModel(BertConfig(vocab_size=len(tokenizer), **{**defaults, **config})).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder
