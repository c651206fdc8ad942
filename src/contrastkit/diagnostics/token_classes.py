"""Token classes (thesis-methods section 1, D6): function versus content tokens, and frequency deciles.

The paper's concepts, measured the way the spec recommends (no source code
exists for these). Function tokens are the tokens of an English stop-word
list (scikit-learn's ``ENGLISH_STOP_WORDS`` by default, or any id set, e.g.
:func:`frequent_token_ids`); every other non-special token is a content
token. Every score is adjusted by the layer's anisotropy baseline ``A_l``.

* *Spurious contextualization*: adjusted self-similarity (D2) of function
  tokens versus content tokens. Expected after contrastive learning: content
  tokens' self-similarity goes up, function tokens' goes down (function tokens
  take on the meaning of their sentence).
* *Entourage effect*: per sentence, the mean cosine of its function-token
  vectors to the centroid of its content-token vectors, averaged over
  sentences that have both, minus ``A_l``. Expected to rise during
  contrastive learning: function tokens follow the dominant semantic tokens.
* *Frequency deciles*: D2 and D4 (norm) per decile of corpus frequency
  (decile 0 = the most frequent ids). D2 deciles split the scored ids, D4
  deciles all ids of the eligible tokens.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
from torch import Tensor

from contrastkit.diagnostics.contextual import Groups, self_similarity_groups, self_similarity_of
from contrastkit.diagnostics.tokens import TokenStates
from contrastkit.encoders.text import TextEncoder


def function_token_ids(encoder: TextEncoder, words: Iterable[str] = ENGLISH_STOP_WORDS) -> Tensor:
    """Sorted ids of the words that are one token (as given, capitalised, or after a space for BPE tokenizers).

    Words the vocabulary lacks (they come out as the unknown token) and
    special tokens are left out.
    """
    variants = sorted({v for w in words for v in (w, w.capitalize(), " " + w)})
    encoded = encoder.tokenizer(variants, add_special_tokens=False)["input_ids"]
    special = set(encoder.tokenizer.all_special_ids)
    return torch.tensor(sorted({ids[0] for ids in encoded if len(ids) == 1} - special), dtype=torch.long)


def frequent_token_ids(states: TokenStates, *, k: int = 100, exclude_special: bool = True) -> Tensor:
    """The ``k`` most frequent token ids of ``states`` (an alternative function-token set), sorted."""
    ids = states.ids[states.token_mask(exclude_special=exclude_special)]
    uniq, counts = torch.unique(ids, return_counts=True)
    return uniq[counts.sort(descending=True, stable=True).indices[:k]].sort().values


@dataclass(frozen=True)
class TokenClassLayer:
    """D6 at one layer, every value minus ``A_l``; None where a class has no scored token.

    ``self_similarity_by_decile`` / ``norm_by_decile`` are raw (not adjusted
    for D4, which is no cosine), decile 0 = most frequent.
    """

    layer: int
    function_self_similarity: float | None
    content_self_similarity: float | None
    entourage: float | None
    self_similarity_by_decile: list[float | None]
    norm_by_decile: list[float | None]


def entourage(x: Tensor, sentence: Tensor, *, function: Tensor, content: Tensor) -> Tensor:
    """Per sentence with both classes: mean cos(function-token vector, centroid of its content-token vectors).

    ``function`` and ``content`` are (N,) row masks; returns one float64 value
    per such sentence, in sentence order.
    """
    c_rows = content.nonzero().reshape(-1)
    f_rows = function.nonzero().reshape(-1)
    f_rows = f_rows[torch.isin(sentence[f_rows], sentence[c_rows])]
    if f_rows.numel() == 0:
        return torch.zeros(0, dtype=torch.float64)
    c_groups = Groups.of(c_rows, sentence[c_rows])
    centroid = c_groups.sums(x[c_rows].to(torch.float64)) / c_groups.counts[:, None]
    slot = torch.searchsorted(c_groups.keys, sentence[f_rows])
    cos = F.cosine_similarity(x[f_rows].to(torch.float64), centroid[slot], dim=-1)
    f_groups = Groups.of(f_rows, sentence[f_rows])
    return f_groups.sums(cos) / f_groups.counts


def _deciles(keys: Tensor, frequency: Tensor, n: int) -> list[Tensor]:
    """``keys`` split into ``n`` near-equal groups by decreasing ``frequency`` (ties: smaller key first)."""
    order = torch.sort(-frequency, stable=True).indices
    return list(torch.tensor_split(keys[order], n))


def token_classes(
    states: TokenStates,
    anisotropy: Sequence[float],
    function_ids: Tensor,
    *,
    min_contexts: int = 5,
    deciles: int = 10,
) -> list[TokenClassLayer]:
    """D6 at every layer (special tokens excluded); ``anisotropy[l]`` is layer l's D1 baseline."""
    if len(anisotropy) != states.num_layers:
        raise ValueError(f"token_classes: {len(anisotropy)} anisotropy values for {states.num_layers} layers")
    tokens = states.token_mask(exclude_special=True)
    is_function = torch.isin(states.ids, function_ids)
    groups = self_similarity_groups(states.ids, states.sentence, eligible=tokens, min_contexts=min_contexts)
    all_ids, all_counts = torch.unique(states.ids[tokens], return_counts=True)
    freq = dict(zip(all_ids.tolist(), all_counts.tolist(), strict=True))
    scored_freq = torch.tensor([freq[i] for i in groups.keys.tolist()], dtype=torch.long)
    d2_deciles = _deciles(groups.keys, scored_freq, deciles)
    d4_deciles = _deciles(all_ids, all_counts, deciles)
    out = []
    for layer, a in enumerate(anisotropy):
        x = states.hidden[layer]
        ss = self_similarity_of(x, groups)
        func = torch.isin(ss.ids, function_ids)
        ent = entourage(x, states.sentence, function=tokens & is_function, content=tokens & ~is_function)
        norms = x.to(torch.float64).norm(dim=-1)
        out.append(
            TokenClassLayer(
                layer=layer,
                function_self_similarity=_mean(ss.values[func], minus=a),
                content_self_similarity=_mean(ss.values[~func], minus=a),
                entourage=_mean(ent, minus=a),
                self_similarity_by_decile=[_mean(ss.values[torch.isin(ss.ids, d)]) for d in d2_deciles],
                norm_by_decile=[_mean(norms[tokens & torch.isin(states.ids, d)]) for d in d4_deciles],
            )
        )
    return out


def _mean(values: Tensor, *, minus: float = 0.0) -> float | None:
    return float(values.mean()) - minus if values.numel() else None


def to_dicts(layers: Sequence[TokenClassLayer]) -> list[dict[str, object]]:
    """JSON-ready records."""
    return [asdict(layer) for layer in layers]
