"""Static embeddings: the mean of per-token vectors (``nn.EmbeddingBag``), no attention.

``StaticEncoder(tokenizer, weights)`` embeds ``prompt + text`` as the mean of
the rows of ``weights`` (V, d) at the text's token ids (tokenized without
special tokens), l2-normalised when ``normalize``. An empty text embeds to
zeros. Thousands of texts per second on a CPU; a common distillation or
baseline target.

:meth:`StaticEncoder.from_transformer` starts from a transformer's input
embedding matrix and tokenizer (for example MiniLM's 30,522 x 384).
``save(path)`` writes sentence-transformers' ``StaticEmbedding`` layout
(``model.safetensors`` with ``embedding.weight``, ``tokenizer.json``, at the
root; ``1_Normalize``), so ``SentenceTransformer(path)`` loads it and gives
the same embeddings.

Example::

    static = StaticEncoder.from_transformer(load_encoder("all-MiniLM-L6-v2"))
    static.encode(["a sentence"]).shape    # (1, 384)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer
from torch import Tensor, nn
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from contrastkit.encoders.base import Features
from contrastkit.encoders.io import (
    ModelFolderError,
    ModuleWriter,
    SavableEncoder,
    check_folder,
    check_safetensors,
    normalize_writer,
)
from contrastkit.encoders.text import TextEncoder


def _backend_tokenizer(tokenizer: Tokenizer | PreTrainedTokenizerBase) -> Tokenizer:
    """A private copy of the Rust tokenizer with padding and truncation off (TypeError for a slow tokenizer)."""
    if isinstance(tokenizer, PreTrainedTokenizerFast):
        tokenizer = tokenizer.backend_tokenizer
    if not isinstance(tokenizer, Tokenizer):
        raise TypeError(f"StaticEncoder needs a fast tokenizer, got {type(tokenizer).__name__}")
    copy = Tokenizer.from_str(tokenizer.to_str())
    copy.no_padding()
    copy.no_truncation()
    return copy


class StaticEncoder(SavableEncoder):
    """Mean of token embeddings; see the module docstring.

    Args:
        tokenizer: a fast tokenizer (``tokenizers.Tokenizer`` or a
            ``PreTrainedTokenizerFast``); a private copy is kept.
        weights: (V, d) initial embeddings, or None with ``dim`` for a
            N(0, 1) initialisation (``nn.EmbeddingBag``'s default).
        dim: embedding size when ``weights`` is None.
        normalize: l2-normalise the means.
        max_length: keep only the first ``max_length`` tokens (None: all, as
            sentence-transformers does; set it only if you never load the
            saved model there).
        prompts: prompt name -> prefix.
    """

    def __init__(
        self,
        tokenizer: Tokenizer | PreTrainedTokenizerBase,
        weights: Tensor | None = None,
        *,
        dim: int | None = None,
        normalize: bool = True,
        max_length: int | None = None,
        prompts: dict[str, str] | None = None,
    ) -> None:
        super().__init__(normalize=normalize, prompts=prompts)
        self.tokenizer = _backend_tokenizer(tokenizer)
        if weights is not None:
            if weights.dim() != 2:
                raise ValueError(f"StaticEncoder: weights must be (V, d), got {tuple(weights.shape)}")
            self.embedding = nn.EmbeddingBag.from_pretrained(
                weights.detach().clone().float(), freeze=False, mode="mean"
            )
        elif dim is not None:
            self.embedding = nn.EmbeddingBag(self.tokenizer.get_vocab_size(), dim, mode="mean")
        else:
            raise ValueError("StaticEncoder: give weights or dim")
        if self.embedding.num_embeddings < self.tokenizer.get_vocab_size():
            raise ValueError(
                f"StaticEncoder: {self.embedding.num_embeddings} embedding rows for a vocabulary of "
                f"{self.tokenizer.get_vocab_size()} tokens"
            )
        self.max_length = max_length

    @classmethod
    def from_transformer(
        cls,
        encoder_or_path: TextEncoder | str | Path,
        *,
        normalize: bool = True,
        prompts: dict[str, str] | None = None,
        trust_remote_code: bool = False,
    ) -> StaticEncoder:
        """Initialise from a transformer's input embedding matrix and tokenizer (a TextEncoder or a folder).

        The encoder's prompts are kept unless ``prompts`` is given.
        """
        if isinstance(encoder_or_path, TextEncoder):
            source = encoder_or_path
        else:
            source = TextEncoder.from_folder(encoder_or_path, trust_remote_code=trust_remote_code)
        weights = source.model.get_input_embeddings().weight
        if not isinstance(weights, Tensor):
            raise TypeError(f"{type(source.model).__name__}'s input embeddings have no weight matrix")
        return cls(
            source.tokenizer,
            weights,
            normalize=normalize,
            prompts=source.prompts if prompts is None else prompts,
        )

    @classmethod
    def from_folder(
        cls, path: str | Path, *, normalize: bool = True, prompts: dict[str, str] | None = None
    ) -> StaticEncoder:
        """A sentence-transformers ``StaticEmbedding`` module folder (``tokenizer.json`` + safetensors)."""
        folder = check_folder(Path(path))
        if not (folder / "tokenizer.json").is_file():
            raise ModelFolderError(f"{folder}: no tokenizer.json (a StaticEmbedding folder needs one)")
        check_safetensors(folder)
        try:
            tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        except Exception as err:  # the Rust tokenizer raises its own exception type
            raise ModelFolderError(f"{folder / 'tokenizer.json'}: could not load ({err})") from err
        state = load_file(str(folder / "model.safetensors"))
        if "embedding.weight" not in state:
            raise ModelFolderError(f"{folder / 'model.safetensors'}: no 'embedding.weight' tensor")
        return cls(tokenizer, state["embedding.weight"], normalize=normalize, prompts=prompts)

    @property
    def dim(self) -> int:
        return self.embedding.embedding_dim

    def token_ids(self, texts: Sequence[str], prompt: str | None = None) -> list[list[int]]:
        """Each ``prompt + text``'s token ids, without special tokens, cut to ``max_length``."""
        batch = [(prompt or "") + t for t in texts]
        encode = getattr(self.tokenizer, "encode_batch_fast", self.tokenizer.encode_batch)  # fast: no offsets
        ids = [e.ids for e in encode(batch, add_special_tokens=False)]
        return ids if self.max_length is None else [i[: self.max_length] for i in ids]

    def tokenize(self, texts: Sequence[str], *, prompt: str | None = None) -> Features:
        """``input_ids`` and ``attention_mask`` (n, L), right-padded with id 0 (masked)."""
        ids = self.token_ids(texts, prompt)
        width = max((len(i) for i in ids), default=0)
        input_ids = torch.tensor([i + [0] * (width - len(i)) for i in ids], dtype=torch.long).view(len(ids), width)
        mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i in ids], dtype=torch.long)
        return {"input_ids": input_ids, "attention_mask": mask.view(len(ids), width)}

    def forward(self, features: Features) -> Tensor:
        device = self.embedding.weight.device
        ids, mask = features["input_ids"].to(device), features["attention_mask"].to(device).bool()
        return self._bags(ids[mask], mask.sum(dim=1))

    def _bags(self, flat_ids: Tensor, lengths: Tensor) -> Tensor:
        """(n, d): the mean of ``flat_ids``' rows per consecutive bag of ``lengths`` ids (l2-normalised)."""
        offsets = torch.cat([lengths.new_zeros(1), lengths.cumsum(0)[:-1]])
        out = self.embedding(flat_ids, offsets)
        return F.normalize(out, dim=-1) if self.normalize else out

    def embed_batch(self, texts: Sequence[str], prompt: str | None) -> Tensor:
        """One ``encode`` batch, faster than the padded path: tokenized in one call, its ids fed to the
        ``EmbeddingBag`` as one flat tensor with offsets (no padding)."""
        device = self.embedding.weight.device
        ids = self.token_ids(texts, prompt)
        flat = torch.tensor([t for i in ids for t in i], dtype=torch.long, device=device)
        lengths = torch.tensor([len(i) for i in ids], dtype=torch.long, device=device)
        return self._bags(flat, lengths)

    def _write(self, folder: Path) -> None:
        state = {"embedding.weight": self.embedding.weight.detach().cpu().contiguous()}
        save_file(state, str(folder / "model.safetensors"))
        self.tokenizer.save(str(folder / "tokenizer.json"))

    def st_modules(self) -> list[ModuleWriter]:
        modules = [ModuleWriter("StaticEmbedding", self._write)]
        return [*modules, normalize_writer()] if self.normalize else modules
