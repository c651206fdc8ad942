"""Hard-negative mining as small stages: load, encode, search, filter, sample, write.

::

    data = load_data("scifact", split="train")          # BEIR folder, or a pairs JSONL/CSV/TSV file
    config = MiningConfig(method="bm25", num_negatives=5, filters=FilterConfig(range_max=50, relative_margin=0.05))
    result = mine(data, config)                         # search -> eligible -> sample -> quality
    write_jsonl(to_records(data, result.negatives), "negatives.jsonl")
    write_report(result, "negatives.report")            # .json and .md

Each stage is a public function, so a caller can swap one (its own search,
a cross-encoder ``rescorer``) and keep the rest. The output has one record
per (query, positive): ``{"anchor", "positive", "negative": [...], "group":
query id}``, which :func:`contrastkit.data.readers.read_examples` reads as
triplet (hard-negative) examples whose ``group`` keeps same-query examples
from being each other's in-batch negatives. Files are written atomically
(temporary file, then rename): a failed run leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch.nn.functional as F
from torch import Tensor

from contrastkit.data.errors import DataError
from contrastkit.mining import candidates as cand
from contrastkit.mining.filters import DEFAULT_RELATIVE_MARGIN, FilterConfig, eligible
from contrastkit.mining.quality import quality_warnings, summarize
from contrastkit.mining.sample import Sampling, sample

Method = Literal["bm25", "dense", "hybrid"]


class FalseNegativeWarning(UserWarning):
    """The mined set's estimated false-negative rate is high (:func:`~contrastkit.mining.quality.quality_warnings`)."""


def default_filters() -> FilterConfig:
    """Mining's default filters: the relative margin :data:`~contrastkit.mining.filters.DEFAULT_RELATIVE_MARGIN`."""
    return FilterConfig(relative_margin=DEFAULT_RELATIVE_MARGIN)


@dataclass(frozen=True)
class MiningData:
    """Queries with the corpus indices of their positives, and the corpus."""

    queries: list[str]
    query_ids: list[str]
    positives: list[list[int]]
    corpus: list[str]
    doc_ids: list[str]


@dataclass(frozen=True)
class MiningConfig:
    """Mining settings. ``filters`` default to :func:`default_filters` (a 5% relative margin: safe against
    unlabelled positives); pass ``FilterConfig()`` for none. ``depth`` (candidates per query) defaults as in
    sentence-transformers: ``range_max + max positives``, else ``range_min + 10 * k + max positives`` with a
    margin or ceiling set, else ``range_min + k + max positives``."""

    method: Method = "dense"
    num_negatives: int = 3
    filters: FilterConfig = field(default_factory=default_filters)
    sampling: Sampling = "top"
    seed: int = 0
    depth: int | None = None
    index: cand.IndexKind = "auto"
    fusion: Literal["rrf", "mix"] = "rrf"
    weight: float = 0.5
    batch_size: int = 64


@dataclass
class MiningResult:
    """Per query: mined corpus indices and their scores, the positives' scores; stage timings; quality;
    warnings about the quality (also issued as :class:`FalseNegativeWarning`)."""

    negatives: list[list[int]]
    negative_scores: list[Tensor]
    positive_scores: list[Tensor]
    seconds: dict[str, float]
    quality: dict[str, Any]
    config: MiningConfig
    warnings: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- load
def load_data(path: str | Path, *, split: str = "train") -> MiningData:
    """A BEIR folder (its ``split`` qrels) or a pairs file (anchor/positive[/negative] columns)."""
    path = Path(path)
    if path.is_dir():
        return from_beir(path, split=split)
    if not path.exists():
        raise FileNotFoundError(f"no such data file or BEIR folder: {path}")
    return from_pairs(path)


def from_beir(folder: str | Path, *, split: str = "train") -> MiningData:
    """Judged queries with a relevant document (grade >= 1) of one BEIR split; the whole corpus."""
    from contrastkit.data.beir import load_beir

    data = load_beir(folder, split=split)
    doc_ids = list(data.corpus)
    row = {d: i for i, d in enumerate(doc_ids)}
    qids = [q for q, docs in data.qrels.items() if any(g >= 1 for g in docs.values())]
    positives = [[row[d] for d, g in data.qrels[q].items() if g >= 1] for q in qids]
    return MiningData([data.queries[q] for q in qids], qids, positives, [data.corpus[d] for d in doc_ids], doc_ids)


def from_pairs(path: str | Path) -> MiningData:
    """Examples of a pairs/triplets file; the corpus is every distinct positive and negative text.

    Examples with the same anchor are merged into one query with all their positives.
    """
    from contrastkit.data.readers import load_examples

    examples = load_examples(path)
    texts: dict[str, int] = {}
    by_anchor: dict[str, list[int]] = {}
    for ex in examples:
        if not ex.positives:
            raise DataError(f"mining needs a positive per example; {path} has examples without one")
        for text in (*ex.positives, *ex.negatives):
            texts.setdefault(text, len(texts))
        pos = by_anchor.setdefault(ex.anchor, [])
        pos += [texts[p] for p in ex.positives if texts[p] not in pos]
    queries = list(by_anchor)
    corpus = list(texts)
    return MiningData(queries, [str(i) for i in range(len(queries))], list(by_anchor.values()), corpus, corpus)


# ---------------------------------------------------------------- stages
def search_depth(config: MiningConfig, data: MiningData) -> int:
    """Candidates to retrieve per query (see :class:`MiningConfig`)."""
    if config.depth is not None:
        return config.depth
    f, k = config.filters, config.num_negatives
    most = max((len(p) for p in data.positives), default=0)
    if f.range_max is not None:
        return f.range_max + most
    filtered = f.absolute_margin is not None or f.relative_margin is not None or f.max_score is not None
    return f.range_min + (10 * k if filtered else k) + most


def encode(encoder: Any, data: MiningData, *, batch_size: int = 64) -> tuple[Tensor, Tensor]:
    """l2-normalised (query, corpus) embeddings; ``query``/``document`` prompts used when the encoder has them."""
    prompts = getattr(encoder, "prompts", {}) or {}
    q = encoder.encode(data.queries, batch_size=batch_size, prompt_name="query" if "query" in prompts else None)
    d = encoder.encode(data.corpus, batch_size=batch_size, prompt_name="document" if "document" in prompts else None)
    return F.normalize(q.float(), dim=-1), F.normalize(d.float(), dim=-1)


def search(
    data: MiningData,
    config: MiningConfig,
    *,
    embeddings: tuple[Tensor, Tensor] | None = None,
    bm25: cand.BM25Index | None = None,
) -> tuple[cand.Candidates, list[Tensor]]:
    """Candidates and the positives' scores for ``config.method`` (dense/hybrid need ``embeddings``)."""
    depth = search_depth(config, data)
    parts = []
    if config.method in ("bm25", "hybrid"):
        bm25 = bm25 or cand.BM25Index(data.corpus)
        parts.append((bm25.search(data.queries, depth), cand.bm25_positive_scores(bm25, data.queries, data.positives)))
    if config.method in ("dense", "hybrid"):
        if embeddings is None:
            raise ValueError(f"method {config.method!r} needs an encoder (embeddings)")
        q, d = embeddings
        found = cand.dense_candidates(q, d, depth, index=config.index)
        parts.append((found, cand.dense_positive_scores(q, d, data.positives)))
    if not parts:
        raise ValueError(f"unknown method {config.method!r}; expected bm25, dense or hybrid")
    if len(parts) == 1:
        return parts[0]
    (c1, p1), (c2, p2) = parts
    fused, pos = cand.hybrid_candidates(
        c1, c2, fusion=config.fusion, weight=config.weight, first_positive=p1, second_positive=p2
    )
    assert pos is not None, "both parts carry their positives' scores"
    return fused, pos


def select(
    data: MiningData, config: MiningConfig, found: cand.Candidates, positive_scores: list[Tensor]
) -> tuple[list[list[int]], list[Tensor]]:
    """Filter then sample: the negatives per query and their scores."""
    keep = eligible(found, data.positives, config.filters, positive_scores)
    negatives = sample(found, keep, config.num_negatives, sampling=config.sampling, seed=config.seed)
    scores = []
    for q, negs in enumerate(negatives):
        where = {int(d): i for i, d in enumerate(found.index[q].tolist()) if d >= 0}
        scores.append(found.scores[q, [where[d] for d in negs]].float())
    return negatives, scores


def mine(
    data: MiningData,
    config: MiningConfig,
    *,
    encoder: Any = None,
    embeddings: tuple[Tensor, Tensor] | None = None,
    rescorer: Any = None,
) -> MiningResult:
    """encode (dense/hybrid) -> search -> [rescore] -> filter + sample -> quality, timed per stage."""
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    if embeddings is None and encoder is not None and config.method != "bm25":
        embeddings = encode(encoder, data, batch_size=config.batch_size)
        seconds["encode"] = time.perf_counter() - start
    t = time.perf_counter()
    found, positive_scores = search(data, config, embeddings=embeddings)
    seconds["search"] = time.perf_counter() - t
    if rescorer is not None:
        t = time.perf_counter()
        found, rescored = cand.rescore(found, data.queries, data.corpus, rescorer, positives=data.positives)
        assert rescored is not None, "rescore was given the positives"
        positive_scores = rescored
        seconds["rescore"] = time.perf_counter() - t
    t = time.perf_counter()
    negatives, negative_scores = select(data, config, found, positive_scores)
    seconds["select"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - start
    quality: dict[str, Any] = summarize(positive_scores, negative_scores)
    quality["judge"] = "rescorer" if rescorer is not None else config.method  # whose scores the estimates use
    quality["queries"] = len(data.queries)
    quality["queries_short"] = sum(len(n) < config.num_negatives for n in negatives)
    quality["negatives"] = sum(len(n) for n in negatives)
    found_warnings = quality_warnings(quality)
    for text in found_warnings:
        warnings.warn(text, FalseNegativeWarning, stacklevel=2)
    return MiningResult(negatives, negative_scores, positive_scores, seconds, quality, config, found_warnings)


# ---------------------------------------------------------------- write
def to_records(
    data: MiningData,
    negatives: Sequence[Sequence[int]],
    *,
    scores: tuple[Sequence[Tensor], Sequence[Tensor]] | None = None,
) -> list[dict[str, Any]]:
    """One record per (query, positive) with the query's negatives; queries without negatives are left out.

    ``scores`` (per query: its positives' scores in ``data.positives`` order, its negatives' in ``negatives``
    order; a teacher's, from :func:`mine` with a ``rescorer``) adds ``positive_scores`` / ``negative_scores``
    to each record, the fields distillation objectives read.
    """
    records = []
    for q, negs in enumerate(negatives):
        if not negs:
            continue
        texts = [data.corpus[d] for d in negs]
        for j, p in enumerate(data.positives[q]):
            record: dict[str, Any] = {
                "anchor": data.queries[q],
                "positive": data.corpus[p],
                "negative": texts,
                "group": data.query_ids[q],
            }
            if scores is not None:
                record["positive_scores"] = [float(scores[0][q][j])]
                record["negative_scores"] = [float(s) for s in scores[1][q]]
            records.append(record)
    return records


def to_grouped_records(
    data: MiningData,
    negatives: Sequence[Sequence[int]],
    *,
    scores: tuple[Sequence[Tensor], Sequence[Tensor]] | None = None,
) -> list[dict[str, Any]]:
    """One record per query: all its positives (a list) and its negatives (a list, possibly empty: every query is
    kept, training then gives it in-batch negatives only); ``scores`` as in :func:`to_records`."""
    records = []
    for q, negs in enumerate(negatives):
        record: dict[str, Any] = {
            "anchor": data.queries[q],
            "positive": [data.corpus[p] for p in data.positives[q]],
            "negative": [data.corpus[d] for d in negs],
            "group": data.query_ids[q],
        }
        if scores is not None:
            record["positive_scores"] = [float(s) for s in scores[0][q]]
            record["negative_scores"] = [float(s) for s in scores[1][q]]
        records.append(record)
    return records


def atomic_write(path: str | Path, text: str) -> None:
    """Write ``text`` to a temporary file next to ``path``, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_jsonl(records: Sequence[dict[str, Any]], path: str | Path) -> None:
    """The records as JSONL, atomically."""
    atomic_write(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))


def report(result: MiningResult) -> dict[str, Any]:
    """The report as a JSON-ready dict: config, timings, quality."""
    config = asdict(result.config)
    return {"config": config, "seconds": result.seconds, "quality": result.quality, "warnings": result.warnings}


def write_report(result: MiningResult, stem: str | Path) -> tuple[Path, Path]:
    """``<stem>.json`` and ``<stem>.md`` (atomically); returns both paths."""
    data = report(result)
    stem = Path(stem)
    json_path, md_path = stem.with_name(stem.name + ".json"), stem.with_name(stem.name + ".md")
    atomic_write(json_path, json.dumps(data, indent=2, default=str) + "\n")
    lines = ["# Hard-negative mining report", "", f"method: {result.config.method}", "", "| quantity | value |"]
    lines.append("|---|---|")
    for key, value in {**data["quality"], **{f"seconds_{k}": v for k, v in data["seconds"].items()}}.items():
        lines.append(f"| {key} | {value:.4f} |" if isinstance(value, float) else f"| {key} | {value} |")
    lines += ["", *(f"**Warning**: {w}" for w in result.warnings)] if result.warnings else []
    lines += ["", "ECI terms are status partial: placeholder hardness/safety, not the paper's exact ECI."]
    atomic_write(md_path, "\n".join(lines) + "\n")
    return json_path, md_path
