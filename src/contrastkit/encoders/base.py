"""The encoder contract: texts in, one embedding per text out.

Every encoder (transformer text encoders, decoder LMs, static embeddings,
later vision towers) is an ``nn.Module`` with this interface, so the training
loop, GradCache, evaluation and diagnostics never depend on which one it is:

* ``tokenize(texts, prompt=...) -> Features``: a dict of tensors whose first
  dimension is the batch (so :func:`split_features` can chunk it).
* ``forward(features) -> Tensor``: (n, dim) embeddings with gradient,
  l2-normalised when ``normalize`` is True.
* ``encode(texts, ...)``: inference, no gradient, sorted by length and batched,
  returned in input order as a float32 CPU tensor; each batch goes through
  ``embed_batch`` (``forward(tokenize(...))`` unless an encoder has a faster
  inference path, as the static encoder does). A long encode reports its
  progress (:mod:`contrastkit.encoders.progress`: on in the command line).
* ``save(path)``: a sentence-transformers folder (safetensors), written
  atomically, that ``SentenceTransformer(path)`` loads.

Prompts (instructions) are prepended text: ``prompts`` maps a name (``query``,
``document``) to its prefix; ``encode(..., prompt_name="query")`` uses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor, nn

from contrastkit.encoders.progress import EncodeProgress

Features = dict[str, Tensor]


def split_features(features: Features, chunk_size: int) -> list[Features]:
    """Split every tensor of ``features`` along dim 0 into chunks of ``chunk_size`` rows."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    n = next(iter(features.values())).shape[0]
    return [{k: v[i : i + chunk_size] for k, v in features.items()} for i in range(0, n, chunk_size)]


DOCUMENT_PROMPT_NAMES = ("document", "passage", "corpus", "doc")
"""Names of a document-side prompt, in the order sentence-transformers' ``encode_document`` (and
``contrastkit eval``) looks for them; ``doc`` is contrastkit's own."""


class TextEmbedder(Protocol):
    """What code that only encodes needs of a model: an :class:`Encoder`, or anything with its ``encode``
    (an evaluation ``CachedEncoder``)."""

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, prompt_name: str | None = None) -> Tensor: ...


class Encoder(nn.Module):
    """Abstract text encoder; see the module docstring for the contract."""

    def __init__(self, *, normalize: bool = True, prompts: dict[str, str] | None = None) -> None:
        super().__init__()
        self.normalize = normalize
        self.prompts: dict[str, str] = dict(prompts or {})

    @property
    def dim(self) -> int:
        """Embedding dimension."""
        raise NotImplementedError

    def tokenize(self, texts: Sequence[str], *, prompt: str | None = None) -> Features:
        """Model inputs for ``texts`` (each prefixed by ``prompt`` when given)."""
        raise NotImplementedError

    def forward(self, features: Features) -> Tensor:
        """(n, dim) embeddings with gradient."""
        raise NotImplementedError

    def save(self, path: str | Path) -> None:
        """Write a sentence-transformers folder at ``path`` (atomically)."""
        raise NotImplementedError

    def resolve_prompt(self, prompt: str | None = None, prompt_name: str | None = None) -> str | None:
        """An explicit ``prompt`` wins; else ``prompts[prompt_name]`` (a clear error if unknown)."""
        if prompt is not None or prompt_name is None:
            return prompt
        if prompt_name not in self.prompts:
            raise KeyError(f"unknown prompt name {prompt_name!r}; this encoder has {sorted(self.prompts) or 'none'}")
        return self.prompts[prompt_name]

    def embed_batch(self, texts: Sequence[str], prompt: str | None) -> Tensor:
        """(len(texts), dim) embeddings of one inference batch (``encode`` calls it in eval mode, without
        gradient): ``forward(tokenize(texts))``. An encoder with a faster inference path overrides it."""
        return self(self.tokenize(texts, prompt=prompt))

    @torch.no_grad()
    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 64,
        prompt: str | None = None,
        prompt_name: str | None = None,
    ) -> Tensor:
        """(len(texts), dim) float32 CPU embeddings; longest texts first for less padding, input order out.

        An encode longer than a few seconds reports progress on stderr when reporting is on
        (:mod:`contrastkit.encoders.progress`)."""
        prompt = self.resolve_prompt(prompt, prompt_name)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        was_training = self.training
        self.eval()
        try:
            chunks = []
            with EncodeProgress(len(order)) as progress:
                for start in range(0, len(order), batch_size):
                    batch = [texts[i] for i in order[start : start + batch_size]]
                    chunks.append(self.embed_batch(batch, prompt).float().cpu())
                    progress.update(len(batch))
        finally:
            self.train(was_training)
        if not chunks:
            return torch.zeros(0, self.dim)
        out = torch.empty(len(texts), self.dim)
        out[torch.tensor(order)] = torch.cat(chunks)
        return out
