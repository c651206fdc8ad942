"""Embedding diagnostics logged during training: alignment, uniformity, isotropy, effective rank, hubness.

:class:`DiagnosticsCallback` is a :class:`~contrastkit.training.callbacks.Callback`
whose ``on_eval`` embeds a fixed held-out sample (drawn once, at
construction) and returns the scalars of
:func:`contrastkit.diagnostics.embedding_stats` (``mean_cosine``,
``isotropy``, ``effective_rank``, ``uniformity``, ``hubness``), the
``alignment`` of held-out positive pairs, and optionally the per-layer
token anisotropy and the last layer's adjusted self- and intra-sentence
similarity (thesis-methods section 1). The loop logs them as
``eval/<prefix><name>`` in ``metrics.jsonl`` (and TensorBoard), in eval
mode, without gradient and with every random generator restored, so the
training trajectory is unchanged. Under data parallelism only rank 0
measures.

``on_eval`` runs every ``train.eval_every`` steps and at the end; ``every``
thins that out to the steps that are multiples of it (plus the final
evaluation), so set ``train.eval_every`` to ``every`` or a divisor of it.

Example::

    callback = DiagnosticsCallback.from_path("../shared/data/stsb", split="dev", every=100)
    train(config, callbacks=[callback])
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from contrastkit.diagnostics.inputs import load_inputs
from contrastkit.diagnostics.layerwise import contextualization
from contrastkit.diagnostics.stats import embedding_stats
from contrastkit.diagnostics.tokens import token_states
from contrastkit.encoders.base import Encoder
from contrastkit.encoders.text import TextEncoder
from contrastkit.objectives.hardness import alignment
from contrastkit.scale.distributed import world
from contrastkit.training.callbacks import Callback, CallbackContext


class DiagnosticsCallback(Callback):
    """Logs embedding-space diagnostics of a held-out sample; see the module docstring.

    Args:
        texts: held-out texts (at most ``sample_size`` are kept, drawn with ``seed``).
        pairs: held-out positive pairs for alignment (at most ``sample_size``).
        every: measure only at steps that are multiples of this (and at the end); None = every evaluation.
        sample_size: texts and pairs kept (uniformity is O(n^2 d) in memory: keep it near 512).
        hubness_k: neighbours for hubness.
        token_level: also log per-layer token anisotropy (D1) and the last layer's adjusted D2/D3
            (transformer text encoders only; ignored for others).
        prefix: prepended to every logged name (logged as ``eval/<prefix><name>``).
        batch_size: encoding batch size.
        seed: seeds the sample and the uniformity / D1 draws (identical at every evaluation).
    """

    def __init__(
        self,
        texts: Sequence[str] = (),
        *,
        pairs: Sequence[tuple[str, str]] = (),
        every: int | None = None,
        sample_size: int = 512,
        hubness_k: int = 10,
        token_level: bool = False,
        prefix: str = "diag/",
        batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        if every is not None and every < 1:
            raise ValueError(f"DiagnosticsCallback: every must be >= 1 or None, got {every}")
        rng = random.Random(seed)
        pairs = list(pairs)
        texts = list(texts) or list(dict.fromkeys(t for pair in pairs for t in pair))
        self.texts = rng.sample(texts, sample_size) if len(texts) > sample_size else texts
        self.pairs = rng.sample(pairs, sample_size) if len(pairs) > sample_size else pairs
        if len(self.texts) < 2:
            raise ValueError("DiagnosticsCallback: needs at least 2 held-out texts (or pairs)")
        self.every, self.hubness_k, self.token_level = every, hubness_k, token_level
        self.prefix, self.batch_size, self.seed = prefix, batch_size, seed

    @classmethod
    def from_path(cls, path: str | Path, *, split: str | None = None, **kwargs: Any) -> DiagnosticsCallback:
        """Held-out texts and pairs read by :func:`contrastkit.diagnostics.inputs.load_inputs` (STS, BEIR, files)."""
        inputs = load_inputs(path, split=split)
        return cls(inputs.texts, pairs=inputs.pairs, **kwargs)

    def due(self, ctx: CallbackContext) -> bool:
        """Whether this evaluation measures: a multiple of ``every``, or the final step."""
        return self.every is None or ctx.step % self.every == 0 or ctx.step >= ctx.total_steps

    def on_eval(self, ctx: CallbackContext) -> dict[str, float] | None:
        if world()[0] != 0 or not self.due(ctx):
            return None
        encoder = ctx.encoder
        if not isinstance(encoder, Encoder):
            raise TypeError(f"DiagnosticsCallback: expected a contrastkit Encoder, got {type(encoder).__name__}")
        generator = torch.Generator().manual_seed(self.seed)
        emb = encoder.encode(self.texts, batch_size=self.batch_size)
        stats = embedding_stats(emb, uniformity_sample=len(self.texts), hubness_k=self.hubness_k, generator=generator)
        out = dict(stats.scalars())
        if self.pairs:
            a = F.normalize(encoder.encode([p[0] for p in self.pairs], batch_size=self.batch_size), dim=-1)
            b = F.normalize(encoder.encode([p[1] for p in self.pairs], batch_size=self.batch_size), dim=-1)
            out["alignment"] = float(alignment(a, b))
        if self.token_level and isinstance(encoder, TextEncoder):
            layers = contextualization(
                token_states(encoder, self.texts, batch_size=self.batch_size), generator=generator
            ).layers
            out.update({f"token_anisotropy_l{la.layer}": la.anisotropy for la in layers})
            out["adjusted_self_similarity"] = layers[-1].adjusted_self_similarity
            out["adjusted_intra_similarity"] = layers[-1].adjusted_intra_similarity
        return {f"{self.prefix}{k}": float(v) for k, v in out.items()}
