"""Visual STS (MIEB, Pixel Linguist): Spearman of the cosine of two rendered sentences' embeddings vs gold scores.

Two ways in, one protocol (that of :mod:`contrastkit.evaluation.sts`):

* :func:`visual_sts`: a pixel encoder that takes texts and renders them itself
  (``PixelEncoder``); this is exactly :func:`~contrastkit.evaluation.sts.evaluate_sts`
  on that encoder (texts cached, cosine, Spearman/Pearson in float64), with
  an optional text model scored on the same pairs side by side.
* :func:`visual_sts_images`: pre-rendered images (MIEB's rendered STS sets, or
  :func:`render_pairs` with a :class:`~contrastkit.data.render.Renderer`) and
  an image encoder.

Metrics are correlations in [-1, 1]; MIEB and Pixel Linguist report
``100 x spearman`` (:meth:`VisualStsResult.summary` prints it).

Example::

    >>> from contrastkit.evaluation.sts import StsData
    >>> pairs = StsData(["a b", "c"], ["a b", "d"], [5.0, 1.0], path=None)  # doctest: +SKIP
    >>> visual_sts(pixel_encoder, pairs, text_encoder=minilm).summary()       # doctest: +SKIP
    'spearman x 100: pixel 100.00, text 100.00 (2 pairs)'
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from contrastkit.evaluation.cache import EmbeddingCache
from contrastkit.evaluation.image import as_items, encode_items
from contrastkit.evaluation.sts import StsData, StsResult, evaluate_sts, paired_cosine, pearson, spearman


@dataclass(frozen=True)
class VisualStsResult:
    """``metrics``: the pixel model's ``spearman``, ``pearson``, ``main_score`` (+ ``text_spearman``, ``text_pearson``).

    ``pixel`` and ``text`` are the two :class:`StsResult` (``text`` None without a text model).
    """

    metrics: dict[str, float]
    pixel: StsResult
    text: StsResult | None = None

    @property
    def cosine(self) -> list[float]:
        return self.pixel.cosine

    @property
    def gold(self) -> list[float]:
        return self.pixel.gold

    @property
    def subsets(self) -> dict[str, dict[str, float]]:
        return self.pixel.subsets

    def summary(self) -> str:
        """One line: Spearman x 100 of the pixel model (and of the text model)."""
        text = f", text {100 * self.text.metrics['spearman']:.2f}" if self.text is not None else ""
        return f"spearman x 100: pixel {100 * self.pixel.metrics['spearman']:.2f}{text} ({len(self.gold)} pairs)"


def visual_sts(
    pixel_encoder: Any,
    pairs: StsData,
    text_encoder: Any = None,
    *,
    batch_size: int = 64,
    prompt_name: str | None = None,
    cache: EmbeddingCache | None = None,
) -> VisualStsResult:
    """Score a texts-in pixel encoder on STS pairs (and ``text_encoder`` on the same pairs, when given)."""

    def score(encoder: Any) -> StsResult:
        return evaluate_sts(encoder, pairs, batch_size=batch_size, prompt_name=prompt_name, cache=cache)

    pixel = score(pixel_encoder)
    metrics = dict(pixel.metrics)
    text = None
    if text_encoder is not None:
        text = score(text_encoder)
        metrics |= {f"text_{k}": v for k, v in text.metrics.items()}
    metrics["main_score"] = pixel.metrics["spearman"]
    return VisualStsResult(metrics, pixel, text)


def visual_sts_images(
    image_encoder: Any,
    images1: Any,
    images2: Any,
    scores: Sequence[float],
    *,
    batch_size: int = 64,
) -> StsResult:
    """Spearman (also ``main_score``) and Pearson of cos(image1_i, image2_i) vs ``scores`` (one encoder call)."""
    first, second = as_items(images1), as_items(images2)
    if not len(first) == len(second) == len(scores):
        raise ValueError(f"{len(first)} first images, {len(second)} second images and {len(scores)} scores")
    emb = encode_items(image_encoder, [*first, *second], modality="image", batch_size=batch_size)
    n = len(first)
    cosine = paired_cosine(emb[:n], emb[n:]).tolist()
    gold = [float(s) for s in scores]
    rho = spearman(cosine, gold)
    return StsResult({"spearman": rho, "pearson": pearson(cosine, gold), "main_score": rho}, cosine, gold)


def render_pairs(pairs: StsData, renderer: Any) -> tuple[list[Any], list[Any]]:
    """Both sentences of every pair rendered by ``renderer.render`` (each distinct sentence once)."""
    images = {s: renderer.render(s) for s in dict.fromkeys([*pairs.sentences1, *pairs.sentences2])}
    return [images[s] for s in pairs.sentences1], [images[s] for s in pairs.sentences2]
