"""Zero-shot classification (MIEB): items against text embeddings of class-name prompts.

Each class name is put in the prompt template(s) (``"a photo of the digit {}"``:
``{}`` or ``{name}`` is replaced), the prompts are encoded by the text encoder,
l2-normalised and, with several templates, averaged (CLIP's prompt
ensembling); each item goes to the class of largest cosine (ties: the lower
class index). The metric is ``accuracy``.

The image and text sides are any two encoders: the two towers of a dual
encoder, an image model and a text model, or a pixel encoder as the text side
of an image model. ``main_score`` is ``accuracy`` (MIEB's main score).

Example::

    >>> class_prompts(["zero", "one"], ["a photo of the digit {}", "the number {name}"])
    ['a photo of the digit zero', 'the number zero', 'a photo of the digit one', 'the number one']
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, SupportsInt

import numpy as np
import torch.nn.functional as F
from torch import Tensor

from contrastkit.evaluation.cache import EmbeddingCache
from contrastkit.evaluation.classification import accuracy
from contrastkit.evaluation.image import Modality, as_labels, encode_items


@dataclass(frozen=True)
class ZeroShotResult:
    """Metrics, predicted and gold class indices, and the prompts (class-major, one per template)."""

    metrics: dict[str, float]
    predictions: list[int]
    gold: list[int]
    prompts: list[str]


def class_prompts(class_names: Sequence[str], templates: str | Sequence[str]) -> list[str]:
    """Each class name in each template (``{}`` or ``{name}``), class-major: ``[c0 t0, c0 t1, ..., c1 t0, ...]``."""
    templates = [templates] if isinstance(templates, str) else list(templates)
    if not templates or any("{}" not in t and "{name}" not in t for t in templates):
        raise ValueError(f"every template needs a '{{}}' or '{{name}}' placeholder, got {templates!r}")
    return [t.format(name, name=name) for name in class_names for t in templates]


def class_embeddings(
    text_encoder: Any,
    class_names: Sequence[str],
    template: str | Sequence[str] = "a photo of {}",
    *,
    batch_size: int = 64,
    prompt_name: str | None = None,
    cache: EmbeddingCache | None = None,
) -> tuple[Tensor, list[str]]:
    """(C, d) float64 class embeddings (mean of the l2-normalised prompt embeddings per class) and the prompts."""
    if len(class_names) < 2 or len(set(class_names)) != len(class_names):
        raise ValueError(f"zero-shot needs at least 2 distinct class names, got {list(class_names)}")
    prompts = class_prompts(class_names, template)
    text = encode_items(text_encoder, prompts, modality="text", batch_size=batch_size, prompt_name=prompt_name,
                        cache=cache)  # fmt: skip
    return F.normalize(text.double(), dim=-1).view(len(class_names), -1, text.shape[1]).mean(1), prompts


def evaluate_zero_shot(
    image_encoder: Any,
    items: Any,
    labels: Any,
    text_encoder: Any,
    class_names: Sequence[str],
    *,
    template: str | Sequence[str] = "a photo of {}",
    modality: Modality = "image",
    batch_size: int = 64,
    text_prompt_name: str | None = None,
    cache: EmbeddingCache | None = None,
) -> ZeroShotResult:
    """Zero-shot accuracy: each item to the class whose prompt embedding is the most cosine-similar.

    ``labels`` are class indices into ``class_names``. ``modality`` is the
    item side's (``"text"`` for, e.g., RenderedSST2-style text inputs).
    """
    class_emb, prompts = class_embeddings(text_encoder, class_names, template, batch_size=batch_size,
                                          prompt_name=text_prompt_name, cache=cache)  # fmt: skip
    emb = encode_items(image_encoder, items, modality=modality, batch_size=batch_size, cache=cache)
    return zero_shot_from_embeddings(emb, labels, class_emb, prompts)


def zero_shot_from_embeddings(
    item_emb: Tensor, labels: Any, class_emb: Tensor, prompts: Sequence[str] = ()
) -> ZeroShotResult:
    """Zero-shot accuracy of (n, d) item embeddings against (C, d) class embeddings; labels are class indices."""
    gold = [_class_index(y) for y in as_labels(labels)]
    if len(gold) != item_emb.shape[0]:
        raise ValueError(f"{len(gold)} labels for {item_emb.shape[0]} items")
    bad = [y for y in gold if not 0 <= y < class_emb.shape[0]]
    if bad:
        raise ValueError(f"labels must be class indices in [0, {class_emb.shape[0]}), got {bad[:5]}")
    predictions = zero_shot_predict(item_emb, class_emb)
    score = accuracy(gold, predictions)
    return ZeroShotResult({"accuracy": score, "main_score": score}, predictions, gold, list(prompts))


def zero_shot_predict(item_emb: Tensor, class_emb: Tensor) -> list[int]:
    """For (n, d) items and (C, d) classes, the class of largest cosine per item (ties: the lower index)."""
    if item_emb.shape[-1] != class_emb.shape[-1]:
        raise ValueError(f"item embeddings have dim {item_emb.shape[-1]}, class embeddings {class_emb.shape[-1]}")
    sims = F.normalize(item_emb.double(), dim=-1) @ F.normalize(class_emb.double(), dim=-1).T
    return [int(i) for i in np.argmax(sims.numpy(), axis=1)]  # numpy: the first maximum on ties


def _class_index(label: Hashable) -> int:
    """A label as a class index (an int, an integer string, a 0-d tensor...); TypeError for anything else."""
    if isinstance(label, (str, SupportsInt)):
        return int(label)
    raise TypeError(f"zero-shot labels are class indices, got {label!r}")
