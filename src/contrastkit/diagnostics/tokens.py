"""Token-level hidden states of every layer, packed: the input of the contextualization measures (D1 to D6).

:func:`token_states` runs a :class:`~contrastkit.encoders.text.TextEncoder`'s
transformer with ``output_hidden_states=True`` over a sentence set and keeps
the vector of every attended token at every layer ``0..L`` (0 = the
embedding output), packed into one ``(L + 1, N, d)`` tensor: no padding is
stored. Row ``r`` is token ``position[r]`` of sentence ``sentence[r]``; rows
are ordered by sentence, then position. Memory: ``4 (L + 1) N d`` bytes
(about 200 MB for all-MiniLM-L6-v2 on the 1,379 STS-B test sentences).

Padding does not change the states of real tokens (padded keys are masked),
so sentences are batched by length. With ``keep_first_pad=True`` each
sentence shorter than the longest one also keeps the state of its first
padding position, flagged in ``pad``: the reference code of thesis-methods
section 1 pads the whole set to its longest sentence and counts that [PAD]
vector in self-similarity (``reference_compat`` needs it). That state is
the same whatever the amount of padding after it.

Example::

    >>> import torch
    >>> hidden = [torch.arange(12.0).reshape(2, 3, 2)]              # one layer, 2 sentences x 3 positions
    >>> s = TokenStates.from_padded(hidden, input_ids=torch.tensor([[5, 6, 0], [5, 0, 0]]),
    ...                             attention_mask=torch.tensor([[1, 1, 0], [1, 0, 0]]),
    ...                             special_mask=torch.zeros(2, 3, dtype=torch.bool))
    >>> s.ids.tolist(), s.sentence.tolist(), s.lengths.tolist()
    ([5, 6, 5], [0, 0, 1], [2, 1])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from contrastkit.encoders.text import TextEncoder


@dataclass(frozen=True)
class TokenStates:
    """Packed token vectors of a sentence set; see the module docstring.

    Attributes:
        hidden: (L + 1, N, d) float32, layer 0 = embedding output.
        ids: (N,) token ids.
        sentence: (N,) sentence index of each row.
        position: (N,) position of each row inside its padded sentence.
        special: (N,) True for special tokens ([CLS], [SEP], ...) at attended positions.
        pad: (N,) True for the kept first padding position of a sentence (``keep_first_pad``).
        lengths: (S,) attended positions per sentence (special tokens included).
        padded_length: the longest sentence: what padding the whole set as one batch gives.
        pad_id: the tokenizer's padding id (None when it has none).
        first_pad_kept: whether pad rows were kept (``reference_compat`` needs them).
    """

    hidden: Tensor
    ids: Tensor
    sentence: Tensor
    position: Tensor
    special: Tensor
    pad: Tensor
    lengths: Tensor
    padded_length: int
    pad_id: int | None = None
    first_pad_kept: bool = False

    @property
    def num_layers(self) -> int:
        """Layers including the embedding output (L + 1)."""
        return self.hidden.shape[0]

    @property
    def num_sentences(self) -> int:
        return self.lengths.numel()

    def token_mask(self, *, exclude_special: bool) -> Tensor:
        """(N,) rows that are real tokens (not pad rows), without special tokens when ``exclude_special``."""
        keep = ~self.pad
        return keep & ~self.special if exclude_special else keep

    @classmethod
    def from_padded(
        cls,
        hidden: Sequence[Tensor],
        *,
        input_ids: Tensor,
        attention_mask: Tensor,
        special_mask: Tensor,
        keep_first_pad: bool = False,
        pad_id: int | None = None,
    ) -> TokenStates:
        """Pack per-layer padded states ``hidden[l]`` (S, T, d) of right-padded inputs (S, T).

        Keeps the attended positions and, with ``keep_first_pad``, position
        ``length`` of every sentence shorter than T (flagged in ``pad``).
        """
        layout = _Layout.of(input_ids, attention_mask, special_mask, keep_first_pad=keep_first_pad)
        return layout.states(torch.stack([h[layout.keep].float() for h in hidden]), pad_id=pad_id)


@dataclass(frozen=True)
class _Layout:
    """Which padded positions (S, T) are kept and where each lands in the packed rows."""

    keep: Tensor
    first_pad: Tensor
    input_ids: Tensor
    attention_mask: Tensor
    special_mask: Tensor
    keep_first_pad: bool

    @classmethod
    def of(cls, input_ids: Tensor, attention_mask: Tensor, special_mask: Tensor, *, keep_first_pad: bool) -> _Layout:
        mask = attention_mask.bool()
        lengths = mask.sum(1)
        expected = torch.arange(mask.shape[1])[None, :] < lengths[:, None]
        if not torch.equal(mask, expected):
            raise ValueError("TokenStates: inputs must be right-padded (attended positions first)")
        first_pad = torch.zeros_like(mask)
        if keep_first_pad:
            short = lengths < mask.shape[1]
            first_pad[short.nonzero().reshape(-1), lengths[short]] = True
        return cls(mask | first_pad, first_pad, input_ids, mask, special_mask.bool(), keep_first_pad)

    @property
    def destination(self) -> Tensor:
        """(S, T) packed row of each kept position (-1 elsewhere)."""
        flat = self.keep.reshape(-1)
        return torch.where(flat, flat.long().cumsum(0) - 1, -1).reshape(self.keep.shape)

    def states(self, hidden: Tensor, *, pad_id: int | None) -> TokenStates:
        sentence, position = self.keep.nonzero(as_tuple=True)
        return TokenStates(
            hidden=hidden,
            ids=self.input_ids[self.keep].long(),
            sentence=sentence,
            position=position,
            special=(self.special_mask & self.attention_mask)[self.keep],
            pad=self.first_pad[self.keep],
            lengths=self.attention_mask.sum(1),
            padded_length=int(self.keep.shape[1]),
            pad_id=pad_id,
            first_pad_kept=self.keep_first_pad,
        )


def special_token_mask(encoder: TextEncoder, input_ids: Tensor) -> Tensor:
    """(S, T) True where ``input_ids`` is one of the tokenizer's special ids ([CLS], [SEP], [PAD], ...)."""
    special = torch.tensor(sorted(set(encoder.tokenizer.all_special_ids)), dtype=input_ids.dtype)
    return torch.isin(input_ids, special)


@torch.no_grad()
def token_states(
    encoder: TextEncoder, texts: Sequence[str], *, batch_size: int = 64, keep_first_pad: bool = False
) -> TokenStates:
    """Hidden states of every layer for every token of ``texts``, packed (see the module docstring).

    Tokenizes with ``encoder.tokenize`` (its truncation, lowercasing; no
    prompt), sorts by length, runs ``encoder.model(..., output_hidden_states=True)``
    in eval mode (restored afterwards) on the model's device, and returns the
    states as float32 on CPU, rows in input order.
    """
    if not texts:
        raise ValueError("token_states: no texts")
    if keep_first_pad and encoder.tokenizer.padding_side != "right":
        raise ValueError("token_states: keep_first_pad needs a right-padding tokenizer")
    features = encoder.tokenize(list(texts))
    ids, mask = features["input_ids"], features["attention_mask"]
    layout = _Layout.of(ids, mask, special_token_mask(encoder, ids), keep_first_pad=keep_first_pad)
    destination = layout.destination
    lengths = mask.sum(1)
    order = torch.sort(-lengths, stable=True).indices
    hidden: Tensor | None = None
    was_training = encoder.training
    encoder.eval()
    try:
        for start in range(0, len(texts), batch_size):
            rows = order[start : start + batch_size]
            cols = min(int(lengths[rows].max()) + int(keep_first_pad), ids.shape[1])
            batch = {k: v[rows, :cols].to(encoder.model.device) for k, v in features.items()}
            out = encoder.model(**batch, output_hidden_states=True).hidden_states
            if out is None:
                raise ValueError(f"token_states: {type(encoder.model).__name__} returned no hidden states")
            if hidden is None:
                hidden = torch.empty(len(out), int(layout.keep.sum()), out[0].shape[-1])
            keep, dest = layout.keep[rows, :cols], destination[rows, :cols]
            for layer, h in enumerate(out):
                hidden[layer, dest[keep]] = h[keep.to(h.device)].float().cpu()
    finally:
        encoder.train(was_training)
    assert hidden is not None
    return layout.states(hidden, pad_id=encoder.tokenizer.pad_token_id)
