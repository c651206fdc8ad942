"""Any2any retrieval, image-text recall, document understanding, compositionality and multiple choice (MIEB).

* :func:`evaluate_any2any`: queries and documents are each images or texts,
  each side with its own encoder (e.g. the two towers of a dual encoder, or one
  model for both). Exact cosine search (:func:`~contrastkit.evaluation.retrieval.search`,
  ties to the smaller document id) and the trec_eval metrics of
  :mod:`contrastkit.evaluation.metrics`: ``ndcg@k``, ``mrr@k``, ``recall@k``
  per cut-off, ``map``, and ``map@5`` (trec_eval's ``map_cut_5``: average
  precision of the top 5, over all relevant documents) with ``map_at=5``. The
  result is a :class:`~contrastkit.evaluation.retrieval.RetrievalResult`;
  ``main_score`` is ``ndcg@10`` (MIEB's Any2AnyRetrieval) unless ``main_metric`` says otherwise.
* :func:`evaluate_document_retrieval`: text query -> page image (ViDoRe),
  main score ``ndcg@5``; :func:`render_pages` renders text pages with the
  renderer (wrap mode) as an offline stand-in for scanned pages.
* :func:`image_text_recall`: paired data (image i with text ``text_image[j] == i``),
  ``i2t_recall@k`` and ``t2i_recall@k``: the fraction of queries with at least
  one paired item in the top k (CLIP / Flickr30k convention; with one caption
  per image it is trec recall@k).
* :func:`compositionality_metrics`: per sample an (images x texts) score matrix
  whose correct pairs are the diagonal (image i with text i). ``text_acc``:
  every image's best text is its own; ``image_acc``: every text's best image
  is its own; ``accuracy``: both (Winoground's group score). Argmax takes the
  first maximum on ties. As in mteb, a sample with more texts than images
  (ARO, SugarCrepe: 1 image) never counts for ``image_acc``.
* :func:`multiple_choice_accuracy`: vision-centric QA; per query the candidate
  of largest cosine is the answer.

Example::

    >>> import torch
    >>> compositionality_metrics([torch.tensor([[0.9, 0.1], [0.2, 0.8]]), torch.tensor([[0.5, 0.6], [0.1, 0.7]])])
    {'text_acc': 0.5, 'image_acc': 1.0, 'accuracy': 0.5}
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from contrastkit.evaluation.cache import EmbeddingCache
from contrastkit.evaluation.image import Modality, as_items, encode_items
from contrastkit.evaluation.metrics import (
    DocId,
    OrderedDocId,
    QueryId,
    average_precision,
    mean_metrics,
    per_query_metrics,
)
from contrastkit.evaluation.retrieval import RetrievalResult, search


def evaluate_any2any(
    query_encoder: Any,
    queries: Mapping[QueryId, Any],
    doc_encoder: Any,
    corpus: Mapping[OrderedDocId, Any],
    qrels: Mapping[QueryId, Mapping[OrderedDocId, int]],
    *,
    query_modality: Modality,
    doc_modality: Modality,
    k_values: Sequence[int] = (1, 5, 10),
    map_at: int | None = None,
    main_metric: str = "ndcg@10",
    batch_size: int = 64,
    query_prompt_name: str | None = None,
    doc_prompt_name: str | None = None,
    cache: EmbeddingCache | None = None,
) -> RetrievalResult:
    """Encode each side with its encoder, search exactly by cosine, score (see the module docstring).

    Only queries with a relevant document (grade > 0) are encoded and scored;
    every relevant document must be in ``corpus`` and document ids must be
    mutually orderable. ValueError otherwise, or when ``main_metric`` is not computed.
    """
    k_values = tuple(k_values)
    if not k_values or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in k_values):
        raise ValueError(f"k_values must be positive integers, got {k_values!r}")
    names = {f"{m}@{k}" for m in ("ndcg", "mrr", "recall") for k in k_values} | {"map", f"map@{map_at}"}
    if main_metric not in names:
        raise ValueError(f"main_metric {main_metric!r} is not among the computed metrics {sorted(names)}")
    if not corpus:
        raise ValueError("the corpus is empty")
    qids = [q for q in queries if any(g > 0 for g in qrels.get(q, {}).values())]
    if not qids:
        raise ValueError("no query has a relevant document (grade > 0) in the qrels")
    missing = [(q, d) for q in qids for d, g in qrels[q].items() if g > 0 and d not in corpus]
    if missing:
        raise ValueError(
            f"{len(missing)} relevant document(s) are not in the corpus, "
            f"e.g. {missing[0][1]!r} (query {missing[0][0]!r})"
        )
    doc_ids = sorted(corpus)
    start = time.perf_counter()
    q = encode_items(query_encoder, [queries[i] for i in qids], modality=query_modality, batch_size=batch_size,
                     prompt_name=query_prompt_name, cache=cache)  # fmt: skip
    d = encode_items(doc_encoder, [corpus[i] for i in doc_ids], modality=doc_modality, batch_size=batch_size,
                     prompt_name=doc_prompt_name, cache=cache)  # fmt: skip
    encoded = time.perf_counter()
    depth = max(*k_values, map_at or 1)
    scores, index = search(F.normalize(q, dim=-1), F.normalize(d, dim=-1), top_k=depth)
    rankings = {qid: [(doc_ids[j], s) for j, s in zip(row, vals, strict=True)]
                for qid, row, vals in zip(qids, index.tolist(), scores.tolist(), strict=True)}  # fmt: skip
    ranked = {qid: [doc for doc, _ in r] for qid, r in rankings.items()}
    per_query = per_query_metrics({qid: r[: max(k_values)] for qid, r in ranked.items()}, qrels, k_values=k_values)
    if map_at is not None:
        for qid, m in per_query.items():
            m[f"map@{map_at}"] = average_precision(ranked[qid][:map_at], qrels[qid])
    metrics = mean_metrics(per_query)
    metrics["main_score"] = metrics[main_metric]
    return RetrievalResult(metrics, per_query, rankings, len(qids), len(doc_ids), encoded - start,
                           time.perf_counter() - encoded)  # fmt: skip


def evaluate_document_retrieval(
    text_encoder: Any,
    queries: Mapping[QueryId, str],
    page_encoder: Any,
    pages: Mapping[OrderedDocId, Any],
    qrels: Mapping[QueryId, Mapping[OrderedDocId, int]],
    **kwargs: Any,
) -> RetrievalResult:
    """Document understanding (ViDoRe): text queries ranked against page images; main score ``ndcg@5``."""
    kwargs.setdefault("main_metric", "ndcg@5")
    return evaluate_any2any(text_encoder, queries, page_encoder, pages, qrels, query_modality="text",
                            doc_modality="image", **kwargs)  # fmt: skip


def render_pages(texts: Mapping[DocId, str], renderer: Any) -> dict[DocId, np.ndarray]:
    """Each text rendered as a page image by ``renderer.render`` (use a :class:`Renderer` with ``mode="wrap"``)."""
    return {doc_id: renderer.render(text) for doc_id, text in texts.items()}


def image_text_recall(
    image_encoder: Any,
    images: Any,
    text_encoder: Any,
    texts: Sequence[str],
    *,
    text_image: Sequence[int] | None = None,
    k_values: Sequence[int] = (1, 5, 10),
    batch_size: int = 64,
    cache: EmbeddingCache | None = None,
) -> dict[str, float]:
    """``i2t_recall@k`` and ``t2i_recall@k`` of paired data (see the module docstring).

    ``text_image[j]`` is the index of text j's image (default: text j goes with image j).
    """
    img = encode_items(image_encoder, images, modality="image", batch_size=batch_size, cache=cache)
    txt = encode_items(text_encoder, texts, modality="text", batch_size=batch_size, cache=cache)
    owner = list(range(len(texts))) if text_image is None else [int(i) for i in text_image]
    if len(owner) != txt.shape[0] or any(not 0 <= i < img.shape[0] for i in owner):
        raise ValueError(f"text_image must give an image index in [0, {img.shape[0]}) for each of {txt.shape[0]} texts")
    if set(owner) != set(range(img.shape[0])):
        raise ValueError("every image needs at least one paired text")
    img, txt = F.normalize(img, dim=-1), F.normalize(txt, dim=-1)
    depth = max(k_values)
    _, i2t = search(img, txt, top_k=depth)
    _, t2i = search(txt, img, top_k=depth)
    owner_t = torch.tensor(owner)
    i2t_hit = owner_t[i2t] == torch.arange(img.shape[0])[:, None]  # (images, depth): the text belongs to the image
    t2i_hit = t2i == owner_t[:, None]
    out = {}
    for k in k_values:
        out[f"i2t_recall@{k}"] = i2t_hit[:, :k].any(1).double().mean().item()
        out[f"t2i_recall@{k}"] = t2i_hit[:, :k].any(1).double().mean().item()
    return out


def compositionality_metrics(scores: Sequence[Any]) -> dict[str, float]:
    """``text_acc``, ``image_acc`` and ``accuracy`` (group) over per-sample (images x texts) score matrices."""
    if not scores:
        raise ValueError("no samples")
    text_ok, image_ok = [], []
    for i, s in enumerate(scores):
        s = np.asarray(s, dtype=np.float64)
        if s.ndim != 2 or 0 in s.shape or not np.isfinite(s).all():
            raise ValueError(f"sample {i}: expected a finite (images, texts) score matrix, got shape {s.shape}")
        text_ok.append(bool((s.argmax(1) == np.arange(s.shape[0])).all()))
        image_ok.append(bool((s.argmax(0) == np.arange(s.shape[1])).all()))
    n = len(scores)
    return {"text_acc": sum(text_ok) / n, "image_acc": sum(image_ok) / n,
            "accuracy": sum(a and b for a, b in zip(text_ok, image_ok, strict=True)) / n}  # fmt: skip


def compositionality_scores(
    image_encoder: Any,
    text_encoder: Any,
    samples: Sequence[tuple[Any, Sequence[str]]],
    *,
    batch_size: int = 64,
    cache: EmbeddingCache | None = None,
) -> list[Tensor]:
    """Per sample ``(images, texts)``, the (images x texts) cosine matrix; every image and text encoded in one call."""
    images = [img for sample_images, _ in samples for img in as_items(sample_images)]
    texts = [t for _, sample_texts in samples for t in sample_texts]
    img = F.normalize(encode_items(image_encoder, images, modality="image", batch_size=batch_size, cache=cache), dim=-1)
    txt = F.normalize(encode_items(text_encoder, texts, modality="text", batch_size=batch_size, cache=cache), dim=-1)
    out, a, b = [], 0, 0
    for sample_images, sample_texts in samples:
        n_img, n_txt = len(as_items(sample_images)), len(sample_texts)
        out.append(img[a : a + n_img] @ txt[b : b + n_txt].T)
        a, b = a + n_img, b + n_txt
    return out


def evaluate_compositionality(
    image_encoder: Any,
    text_encoder: Any,
    samples: Sequence[tuple[Any, Sequence[str]]],
    *,
    main_metric: str = "accuracy",
    batch_size: int = 64,
    cache: EmbeddingCache | None = None,
) -> dict[str, float]:
    """:func:`compositionality_metrics` of :func:`compositionality_scores`, with ``main_score`` = ``main_metric``.

    MIEB's main metric: ``text_acc`` for ARO and SugarCrepe, ``image_acc`` for
    ImageCoDe, ``accuracy`` (group) for Winoground.
    """
    if main_metric not in ("text_acc", "image_acc", "accuracy"):
        raise ValueError(f"main_metric must be text_acc, image_acc or accuracy, got {main_metric!r}")
    scores = compositionality_scores(image_encoder, text_encoder, samples, batch_size=batch_size, cache=cache)
    metrics = compositionality_metrics(scores)
    return {**metrics, "main_score": metrics[main_metric]}


def multiple_choice_accuracy(query_emb: Tensor, candidate_emb: Sequence[Tensor], answers: Sequence[int]) -> float:
    """Fraction of (n, d) queries whose most cosine-similar candidate in ``candidate_emb[i]`` is ``answers[i]``."""
    if not (query_emb.shape[0] == len(candidate_emb) == len(answers)) or not answers:
        raise ValueError(f"{query_emb.shape[0]} queries, {len(candidate_emb)} candidate sets, {len(answers)} answers")
    q = F.normalize(query_emb.double(), dim=-1)
    right = 0
    for i, (cands, answer) in enumerate(zip(candidate_emb, answers, strict=True)):
        if not 0 <= answer < cands.shape[0]:
            raise ValueError(f"query {i}: answer {answer} is not a candidate index (0..{cands.shape[0] - 1})")
        sims = (F.normalize(cands.double(), dim=-1) @ q[i]).numpy()
        right += int(np.argmax(sims)) == answer
    return right / len(answers)
