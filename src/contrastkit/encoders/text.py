"""Transformer text encoders: any Hugging Face encoder model + pooling, optionally l2-normalised.

``TextEncoder(model, tokenizer, pooling="mean")`` embeds ``prompt + text``
(prompts are plain prefixes, as in sentence-transformers), truncated to
``max_length`` tokens: token states of the model's last layer pooled by
:func:`contrastkit.encoders.pooling.pool` over the attention mask.

``save(path)`` writes a sentence-transformers folder (``Transformer`` at the
root with ``model.safetensors`` and the tokenizer files, ``1_Pooling``,
``2_Normalize`` when normalising, prompts in
``config_sentence_transformers.json``); ``SentenceTransformer(path).encode``
then gives the same embeddings as an encoder loaded from ``path``.

Two lengths: ``max_length`` is where this encoder truncates now (a training
run's ``model.max_length``, an evaluation's ``--max-length``), while
``save_max_length`` is the ``max_seq_length`` that :meth:`save` writes, i.e.
where sentence-transformers and every later load truncate. It defaults to the
model's own inference length (the folder's ``max_seq_length``, else the
tokenizer's limit capped at the positions), so a shorter training length never
leaks into the saved model; set it to change the saved model's length. Load one back with
:func:`contrastkit.encoders.load_encoder` or :meth:`TextEncoder.from_folder`.

Example::

    enc = load_encoder("all-MiniLM-L6-v2")            # offline package
    emb = enc.encode(["a sentence"], prompt="query: ")  # (1, 384), unit norm
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch.nn.functional as F
from torch import Tensor
from transformers import AutoModel, PreTrainedModel, PreTrainedTokenizerBase

from contrastkit.encoders.base import Features
from contrastkit.encoders.io import (
    ModelFolderError,
    ModuleWriter,
    SavableEncoder,
    check_folder,
    load_hf_model,
    load_hf_tokenizer,
    normalize_writer,
    pooling_config,
    read_json,
    write_json,
)
from contrastkit.encoders.pooling import PoolingMode, check_pooling, pool
from contrastkit.encoders.unpad import supports_unpadded, unpadded_token_states

_HUGE = 10**6  # tokenizers without a length limit report model_max_length ~ 1e30


def default_max_length(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> int | None:
    """The tokenizer's ``model_max_length`` capped at the model's position embeddings (None if neither is set)."""
    limits = [tokenizer.model_max_length] if tokenizer.model_max_length < _HUGE else []
    positions = getattr(model.config.get_text_config(), "max_position_embeddings", None)
    if isinstance(positions, int) and positions > 0:
        limits.append(positions)
    return min(limits) if limits else None


def inference_length(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, saved: int | None) -> int | None:
    """The length a saved model is read at: ``saved`` (a folder's ``max_seq_length``), else the default limit."""
    return saved if saved is not None else default_max_length(model, tokenizer)


def write_transformer(folder: Path, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, config: dict) -> None:
    """A ``Transformer`` module: HF model (safetensors), tokenizer files and ``sentence_bert_config.json``."""
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    write_json(folder / "sentence_bert_config.json", config)


def read_transformer_config(folder: Path) -> dict[str, Any]:
    """``sentence_bert_config.json`` of a Transformer module ({} when absent)."""
    path = folder / "sentence_bert_config.json"
    cfg = read_json(path) if path.exists() else {}
    if not isinstance(cfg, dict):
        raise ModelFolderError(f"{path}: expected a JSON object")
    return cfg


class TextEncoder(SavableEncoder):
    """A Hugging Face encoder (``AutoModel``) with pooling; see the module docstring.

    Args:
        model: the transformer; its ``last_hidden_state`` (n, L, d) is pooled.
        tokenizer: its tokenizer (a missing pad token is set to the EOS token).
        pooling: ``mean``, ``cls``, ``last`` (last attended token, whatever
            the padding side) or ``weighted_mean``.
        normalize: l2-normalise the pooled vectors.
        max_length: truncate inputs (prompt included) to this many tokens;
            None = ``save_max_length``.
        save_max_length: the ``max_seq_length`` written by :meth:`save`
            (what sentence-transformers truncates at); None = the tokenizer's
            limit capped at the model's positions. An attribute, settable later.
        prompts: prompt name -> prefix, used by ``encode(prompt_name=...)``.
        do_lower_case: lowercase ``prompt + text`` before tokenizing (some
            sentence-transformers folders ask for it).
        unpad: run the dense layers on real tokens only when the model
            supports it (:mod:`contrastkit.encoders.unpad`: BERT-family
            models); the same states at attended positions, faster on
            padded batches. An attribute, settable later.
    """

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        pooling: PoolingMode = "mean",
        normalize: bool = True,
        max_length: int | None = None,
        save_max_length: int | None = None,
        prompts: dict[str, str] | None = None,
        do_lower_case: bool = False,
        unpad: bool = True,
    ) -> None:
        super().__init__(normalize=normalize, prompts=prompts)
        check_pooling(pooling)
        if tokenizer.pad_token is None and tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token  # decoder tokenizers (GPT-2) ship without a pad token
        self.model = model
        self.tokenizer = tokenizer
        self.pooling: PoolingMode = pooling
        self.save_max_length = inference_length(model, tokenizer, save_max_length)
        self.max_length = max_length if max_length is not None else self.save_max_length
        self.do_lower_case = do_lower_case
        self.unpad = unpad
        self.train(model.training)  # start in the model's mode (eval after from_pretrained)

    @classmethod
    def from_folder(
        cls,
        path: str | Path,
        *,
        pooling: PoolingMode = "mean",
        normalize: bool = True,
        max_length: int | None = None,
        prompts: dict[str, str] | None = None,
        trust_remote_code: bool = False,
    ) -> TextEncoder:
        """A Hugging Face model folder (or a sentence-transformers ``Transformer`` module folder).

        ``max_seq_length`` / ``do_lower_case`` in ``sentence_bert_config.json``
        are honoured; an explicit ``max_length`` wins for this encoder, while
        :meth:`save` keeps writing the folder's ``max_seq_length``
        (``save_max_length``).
        """
        folder = check_folder(Path(path))
        cfg = read_transformer_config(folder)
        model = load_hf_model(folder, AutoModel, trust_remote_code=trust_remote_code)
        tokenizer = load_hf_tokenizer(folder, trust_remote_code=trust_remote_code)
        return cls(
            model,
            tokenizer,
            pooling=pooling,
            normalize=normalize,
            max_length=max_length,
            save_max_length=cfg.get("max_seq_length"),
            prompts=prompts,
            do_lower_case=bool(cfg.get("do_lower_case", False)),
        )

    @property
    def dim(self) -> int:
        return int(self.model.config.get_text_config().hidden_size)

    def tokenize(self, texts: Sequence[str], *, prompt: str | None = None) -> Features:
        """``input_ids``, ``attention_mask`` (and ``token_type_ids`` when the model has them), padded."""
        inputs = [(prompt or "") + t for t in texts]
        if self.do_lower_case:
            inputs = [t.lower() for t in inputs]
        encoded = self.tokenizer(
            inputs,
            padding=True,
            truncation=self.max_length is not None,
            max_length=self.max_length,
            return_tensors="pt",
        )
        return dict(encoded)

    def token_states(self, features: Features) -> Tensor:
        """Last-layer token states (n, L, d) for ``features`` (zeros at padded positions when unpadded)."""
        device = self.model.device
        inputs = {k: v.to(device) for k, v in features.items()}
        if self.unpad and supports_unpadded(self.model):
            return unpadded_token_states(self.model, **inputs)
        return self.model(**inputs).last_hidden_state

    def forward(self, features: Features) -> Tensor:
        hidden = self.token_states(features)
        out = pool(hidden, features["attention_mask"].to(hidden.device), self.pooling)
        return F.normalize(out, dim=-1) if self.normalize else out

    def st_modules(self) -> list[ModuleWriter]:
        config = {"max_seq_length": self.save_max_length, "do_lower_case": self.do_lower_case}
        modules = [
            ModuleWriter("Transformer", lambda folder: write_transformer(folder, self.model, self.tokenizer, config)),
            ModuleWriter(
                "Pooling", lambda folder: write_json(folder / "config.json", pooling_config(self.pooling, self.dim))
            ),
        ]
        return [*modules, normalize_writer()] if self.normalize else modules
