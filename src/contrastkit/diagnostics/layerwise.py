"""Isotropy and contextualization of token vectors at every layer (thesis-methods section 1, D1 to D5).

Xiao, Long & Al Moubayed, *On Isotropy, Contextualization and Learning
Dynamics of Contrastive-based Sentence Representation Learning* (Findings of
ACL 2023, arXiv 2212.09170). :func:`contextualization` takes the packed
states of :func:`~contrastkit.diagnostics.tokens.token_states` and returns,
per layer (0 = embedding output):

* **D1 anisotropy baseline** ``A_l``: n = min(1000, #sentences) sentences
  drawn without replacement, one uniform token from each (so long sentences
  do not dominate), mean cosine over the ordered pairs ``i != j``. What any
  two unrelated tokens share: the contextualization scores are read
  *relative* to it (``adjusted_* = raw - A_l``).
* **D2 self-similarity**, **D3 intra-sentence similarity**, **D4 norm**: see
  :mod:`contrastkit.diagnostics.contextual`. Adjusted self-similarity high =
  tokens keep their identity across contexts; adjusted intra-similarity high
  = sentence meaning dominates its tokens. The paper finds that contrastive
  learning raises intra-similarity and moves the space toward the origin (D4).
* **D5 rogue dimensions** (:func:`~contrastkit.diagnostics.isotropy.rogue_dimensions`)
  of the D1 sample: the largest per-dimension shares of the cosine.

Defaults (the spec's choices): special tokens ([CLS], [SEP]) are left out of
every measure (``exclude_special=True``); an id is scored by D2 when it
occurs in at least ``min_contexts=5`` sentences; the D1 sample is drawn once
and reused at every layer, so layers are compared on the same tokens.

``reference_compat=True`` reproduces the released code exactly: special
tokens in D1, D3 and D4; D2 over every id (PAD, CLS, SEP included) counted at
least 5 times in the set padded to its longest sentence (repeats inside a
sentence count) and present in at least 2 sentences; each id's self-similarity
and ``A_l`` rounded to 3 decimals; a new D1 token per sentence at each layer.
It needs states from ``token_states(..., keep_first_pad=True)``. On
all-MiniLM-L6-v2 and the STS-B test first sentences it gives the code's
saved values (layer 6: ``A`` about 0.012, adjusted self-similarity 0.632,
adjusted intra-similarity 0.651; ``A`` is a random sample, about +-0.01).

Example::

    >>> import torch
    >>> from contrastkit.diagnostics.tokens import TokenStates
    >>> g = torch.Generator().manual_seed(0)
    >>> ids = torch.randint(5, 9, (6, 4), generator=g)
    >>> states = TokenStates.from_padded([torch.randn(6, 4, 8, generator=g)], input_ids=ids,
    ...     attention_mask=torch.ones(6, 4), special_mask=torch.zeros(6, 4))
    >>> report = contextualization(states, generator=g, min_contexts=2)
    >>> len(report.layers), report.anisotropy_sample
    (1, 6)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from contrastkit.diagnostics.contextual import (
    Groups,
    intra_similarity_of,
    mean_norm,
    sample_tokens,
    self_similarity_groups,
    self_similarity_of,
)
from contrastkit.diagnostics.isotropy import mean_cosine, rogue_dimensions
from contrastkit.diagnostics.tokens import TokenStates


@dataclass(frozen=True)
class LayerContext:
    """D1 to D5 at one layer; ``adjusted_*`` = raw minus the anisotropy baseline."""

    layer: int
    anisotropy: float
    self_similarity: float
    intra_similarity: float
    norm: float
    rogue_shares: list[float]
    self_similarity_tokens: int

    @property
    def adjusted_self_similarity(self) -> float:
        return self.self_similarity - self.anisotropy

    @property
    def adjusted_intra_similarity(self) -> float:
        return self.intra_similarity - self.anisotropy

    def to_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["adjusted_self_similarity"] = self.adjusted_self_similarity
        out["adjusted_intra_similarity"] = self.adjusted_intra_similarity
        return out


@dataclass(frozen=True)
class Contextualization:
    """Per-layer D1 to D5 (``layers[0]`` = embedding output) and the settings that produced them."""

    layers: list[LayerContext]
    sentences: int
    anisotropy_sample: int
    exclude_special: bool
    reference_compat: bool
    min_contexts: int

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {k: v for k, v in asdict(self).items() if k != "layers"}
        out["layers"] = [layer.to_dict() for layer in self.layers]
        return out


def _compat_ids(states: TokenStates) -> Tensor:
    """Rows whose id occurs >= 5 times in the set padded to its longest sentence (the reference code's filter)."""
    real = ~states.pad
    counts = torch.bincount(states.ids[real], minlength=int(states.ids.max()) + 1)
    if states.pad_id is not None:
        padding = int((states.padded_length - states.lengths).sum())
        counts = torch.cat([counts, torch.zeros(max(0, states.pad_id + 1 - counts.numel()), dtype=counts.dtype)])
        counts[states.pad_id] += padding
    return counts[states.ids] >= 5


def contextualization(
    states: TokenStates,
    *,
    generator: torch.Generator | None = None,
    exclude_special: bool = True,
    reference_compat: bool = False,
    n_anisotropy: int = 1000,
    min_contexts: int = 5,
    rogue_top: int = 5,
) -> Contextualization:
    """D1 to D5 at every layer of ``states``; see the module docstring for the definitions and the two modes.

    ``generator`` drives the D1 draw (sentences without replacement, then one
    token each); ``rogue_top`` D5 shares are kept per layer.
    """
    if reference_compat:
        if not states.first_pad_kept and bool((states.lengths < states.padded_length).any()):
            raise ValueError("reference_compat needs token_states(..., keep_first_pad=True)")
        exclude_special, min_contexts = False, 2
    tokens = states.token_mask(exclude_special=exclude_special)
    d2_rows = (tokens | states.pad) & _compat_ids(states) if reference_compat else tokens
    has_token = torch.bincount(states.sentence[tokens], minlength=states.num_sentences) > 0
    candidates = has_token.nonzero().reshape(-1)
    n = min(n_anisotropy, candidates.numel())
    if n < 2:
        raise ValueError(f"contextualization: need at least 2 sentences with eligible tokens, got {n}")
    drawn = candidates[torch.randperm(candidates.numel(), generator=generator)[:n]]
    sample = sample_tokens(states.sentence, tokens, sentences=drawn, generator=generator)
    d2 = self_similarity_groups(states.ids, states.sentence, eligible=d2_rows, min_contexts=min_contexts)
    token_rows = tokens.nonzero().reshape(-1)
    d3 = Groups.of(token_rows, states.sentence[token_rows])
    layers = []
    for layer in range(states.num_layers):
        x = states.hidden[layer]
        if reference_compat and layer > 0:
            sample = sample_tokens(states.sentence, tokens, sentences=drawn, generator=generator)
        anisotropy = mean_cosine(x[sample])
        ss = self_similarity_of(x, d2, round_to=3 if reference_compat else None)
        layers.append(
            LayerContext(
                layer=layer,
                anisotropy=round(anisotropy, 3) if reference_compat else anisotropy,
                self_similarity=ss.mean,
                intra_similarity=float(intra_similarity_of(x, d3).mean()),
                norm=mean_norm(x, eligible=tokens),
                rogue_shares=[float(v) for v in rogue_dimensions(x[sample])[:rogue_top]],
                self_similarity_tokens=int(ss.ids.numel()),
            )
        )
    return Contextualization(
        layers=layers,
        sentences=states.num_sentences,
        anisotropy_sample=n,
        exclude_special=exclude_special,
        reference_compat=reference_compat,
        min_contexts=min_contexts,
    )
