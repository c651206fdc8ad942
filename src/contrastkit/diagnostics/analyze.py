"""``analyze``: the whole diagnostic set for one encoder on one text collection, as a :class:`DiagnosticsReport`.

What it measures, with its sample sizes (:class:`AnalyzeSettings`):

* sentence embeddings of up to ``max_texts`` texts (``texts``, or the
  distinct sentences of ``pairs``): :func:`~contrastkit.diagnostics.stats.embedding_stats`
  (mean cosine, isotropy, effective rank, uniformity on ``uniformity_sample``
  of them, hubness at ``hubness_k``, tolerance when ``labels`` are given);
* up to ``max_pairs`` pairs: :func:`~contrastkit.diagnostics.stats.pair_stats`
  (alignment over positives, positive vs negative histograms, Spearman and
  the score by length bucket when gold ``scores`` are given; a pair's length
  is the mean word count of its two texts);
* for transformer text encoders, per layer, on up to ``max_token_sentences``
  sentences (``texts``, or the first sentence of each pair, as the thesis's
  reference set): :func:`~contrastkit.diagnostics.layerwise.contextualization`
  (D1 to D5: per-layer anisotropy, self-similarity, intra-sentence
  similarity, norms, rogue dimensions) and
  :func:`~contrastkit.diagnostics.token_classes.token_classes` (D6).

Every draw comes from one generator seeded with ``settings.seed``, so a
report is reproducible. :func:`contrastkit.diagnostics.report.write_report`
writes it as JSON, Markdown and PNG plots.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor

from contrastkit.diagnostics.layerwise import Contextualization, contextualization
from contrastkit.diagnostics.stats import EmbeddingStats, PairStats, embedding_stats, pair_stats
from contrastkit.diagnostics.token_classes import TokenClassLayer, function_token_ids, token_classes
from contrastkit.diagnostics.tokens import token_states
from contrastkit.encoders.base import Encoder
from contrastkit.encoders.text import TextEncoder


@dataclass(frozen=True)
class AnalyzeSettings:
    """Sample sizes and options of :func:`analyze` (defaults: the thesis-methods section 1 protocol).

    Attributes:
        max_texts: sentence embeddings measured (a seeded random subset beyond).
        max_pairs: pairs measured.
        uniformity_sample: embeddings in the uniformity estimate (memory O(n^2 d)).
        hubness_k: neighbours for the k-occurrence.
        positive_threshold: with gold scores, pairs scoring at least this are positives (STS 0-5: 4.0).
        n_buckets: length buckets.
        token_level: run the per-layer token measures (transformer text encoders only).
        max_token_sentences: sentences for the token measures.
        n_anisotropy: sentences in the D1 draw.
        min_contexts: sentences an id needs to be scored by self-similarity.
        exclude_special: leave [CLS]/[SEP] out of the token measures.
        reference_compat: token measures exactly as the paper's released code.
        batch_size: encoding batch size.
        seed: seeds every random draw.
    """

    max_texts: int = 2000
    max_pairs: int = 2000
    uniformity_sample: int = 512
    hubness_k: int = 10
    positive_threshold: float = 4.0
    n_buckets: int = 4
    token_level: bool = True
    max_token_sentences: int = 2000
    n_anisotropy: int = 1000
    min_contexts: int = 5
    exclude_special: bool = True
    reference_compat: bool = False
    batch_size: int = 64
    seed: int = 0


@dataclass(frozen=True)
class DiagnosticsReport:
    """What :func:`analyze` measured; ``to_dict()`` is JSON-ready.

    ``pairs`` is None without pairs; ``layers`` and ``token_classes`` are None
    when the token-level measures did not run (``notes`` says why).
    """

    model: str
    embedding: EmbeddingStats
    pairs: PairStats | None
    layers: Contextualization | None
    token_classes: list[TokenClassLayer] | None
    settings: AnalyzeSettings
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def scalars(self) -> dict[str, float]:
        """Headline numbers, flat: the embedding and pair scalars, and the last layer's token measures."""
        out = dict(self.embedding.scalars())
        if self.pairs is not None:
            out.update(self.pairs.scalars())
        if self.layers is not None:
            last = self.layers.layers[-1]
            out["token_anisotropy"] = last.anisotropy
            out["adjusted_self_similarity"] = last.adjusted_self_similarity
            out["adjusted_intra_similarity"] = last.adjusted_intra_similarity
        return out

    def to_dict(self) -> dict[str, object]:
        return {
            "model": self.model,
            "scalars": self.scalars(),
            "embedding": self.embedding.to_dict(),
            "pairs": None if self.pairs is None else self.pairs.to_dict(),
            "layers": None if self.layers is None else self.layers.to_dict(),
            "token_classes": None if self.token_classes is None else [asdict(t) for t in self.token_classes],
            "settings": asdict(self.settings),
            "seconds": dict(self.seconds),
            "notes": list(self.notes),
        }


def _subset(n: int, size: int, generator: torch.Generator) -> list[int]:
    if size >= n:
        return list(range(n))
    return sorted(torch.randperm(n, generator=generator)[:size].tolist())


def analyze(
    encoder: Encoder,
    texts: Sequence[str] = (),
    *,
    pairs: Sequence[tuple[str, str]] = (),
    scores: Sequence[float] | None = None,
    labels: Sequence[object] | None = None,
    settings: AnalyzeSettings | None = None,
    name: str = "model",
) -> DiagnosticsReport:
    """Run every diagnostic on ``texts`` and/or ``pairs``; see the module docstring for what and on how many.

    ``scores`` (one per pair) are gold similarities; ``labels`` (one per
    text) give tolerance. Raises ValueError when there is nothing to measure
    (fewer than 2 texts) or the lengths disagree.
    """
    settings = settings or AnalyzeSettings()
    if scores is not None and len(scores) != len(pairs):
        raise ValueError(f"analyze: {len(scores)} scores for {len(pairs)} pairs")
    if labels is not None and len(labels) != len(texts):
        raise ValueError(f"analyze: {len(labels)} labels for {len(texts)} texts")
    sentences = list(texts) if texts else list(dict.fromkeys(s for pair in pairs for s in pair))
    if len(sentences) < 2:
        raise ValueError("analyze: need at least 2 texts (or pairs) to measure")
    generator = torch.Generator().manual_seed(settings.seed)
    seconds: dict[str, float] = {}
    notes: list[str] = []

    start = time.perf_counter()
    keep = _subset(len(sentences), settings.max_texts, generator)
    chosen = _subset(len(pairs), settings.max_pairs, generator)
    lookup = _encode_once(encoder, [sentences[i] for i in keep] + [t for i in chosen for t in pairs[i]], settings)
    seconds["encode"] = time.perf_counter() - start

    start = time.perf_counter()
    embedding = embedding_stats(
        lookup([sentences[i] for i in keep]), labels=[labels[i] for i in keep] if labels is not None else None,
        uniformity_sample=settings.uniformity_sample, hubness_k=settings.hubness_k, generator=generator,
    )  # fmt: skip
    seconds["embedding"] = time.perf_counter() - start

    pair_result = None
    if pairs:
        start = time.perf_counter()
        chosen_scores = [scores[i] for i in chosen] if scores is not None else None
        pair_result = _pair_part(lookup, [pairs[i] for i in chosen], chosen_scores, settings)
        seconds["pairs"] = time.perf_counter() - start

    layers, classes = None, None
    if not settings.token_level:
        notes.append("token-level measures not requested")
    elif not isinstance(encoder, TextEncoder):
        notes.append(f"token-level measures skipped: {type(encoder).__name__} is not a transformer TextEncoder")
    else:
        start = time.perf_counter()
        layers, classes = _token_part(encoder, list(texts) if texts else [p[0] for p in pairs], settings, generator)
        seconds["token_level"] = time.perf_counter() - start
    return DiagnosticsReport(name, embedding, pair_result, layers, classes, settings, seconds, notes)


def _encode_once(encoder: Encoder, texts: list[str], settings: AnalyzeSettings) -> Callable[[list[str]], Tensor]:
    """Encode the distinct ``texts`` once; returns a lookup from a list of those texts to their (n, d) rows."""
    distinct = list(dict.fromkeys(texts))
    embeddings = encoder.encode(distinct, batch_size=settings.batch_size)
    row = {text: i for i, text in enumerate(distinct)}
    return lambda batch: embeddings[torch.tensor([row[t] for t in batch], dtype=torch.long)]


def _pair_part(
    lookup: Callable[[list[str]], Tensor],
    pairs: Sequence[tuple[str, str]],
    scores: Sequence[float] | None,
    settings: AnalyzeSettings,
) -> PairStats:
    a, b = lookup([p[0] for p in pairs]), lookup([p[1] for p in pairs])
    gold = torch.tensor([float(s) for s in scores], dtype=torch.float64) if scores is not None else None
    lengths = [round((len(p[0].split()) + len(p[1].split())) / 2) for p in pairs]
    return pair_stats(
        a, b, scores=gold, positive_threshold=settings.positive_threshold, lengths=lengths,
        n_buckets=settings.n_buckets,
    )  # fmt: skip


def _token_part(
    encoder: TextEncoder, texts: list[str], settings: AnalyzeSettings, generator: torch.Generator
) -> tuple[Contextualization, list[TokenClassLayer]]:
    texts = [texts[i] for i in _subset(len(texts), settings.max_token_sentences, generator)]
    states = token_states(encoder, texts, batch_size=settings.batch_size, keep_first_pad=settings.reference_compat)
    layers = contextualization(
        states, generator=generator, exclude_special=settings.exclude_special,
        reference_compat=settings.reference_compat, n_anisotropy=settings.n_anisotropy,
        min_contexts=settings.min_contexts,
    )  # fmt: skip
    anisotropy = [layer.anisotropy for layer in layers.layers]
    return layers, token_classes(states, anisotropy, function_token_ids(encoder), min_contexts=settings.min_contexts)
