"""Semantic textual similarity: Spearman and Pearson correlation of cosine similarity with gold scores.

Data: ``<folder>/<split>.tsv`` with header ``sentence1<TAB>sentence2<TAB>score``,
split on tabs with quoting disabled (some sentences begin with ``"``), any
score scale (``.jsonl``/``.csv`` with the same columns also work). STS12-14
ship one ``test.tsv`` concatenating their SemEval subsets; they are scored as
one set (as MTEB does), and when ``meta.json`` lists ``subsets`` with
``row_range`` the per-subset correlations are computed as well
(:attr:`StsResult.subsets`, shown in reports, not part of the metrics).

Protocol (MTEB's): both sentences are encoded (one cached encoder call for
all distinct texts), the cosine of each pair is the prediction, and the
metrics are ``spearman`` (Pearson correlation of average ranks, so ties share
their mean rank) and ``pearson``, computed in float64. They lie in [-1, 1];
MTEB reports ``100 x spearman``.

Example::

    >>> spearman([1, 2, 2, 3], [10, 20, 20, 40])
    1.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch.nn.functional as F
from torch import Tensor

from contrastkit.data.errors import DataError
from contrastkit.data.examples import Example
from contrastkit.data.formats import parse_json
from contrastkit.data.readers import load_examples
from contrastkit.evaluation.cache import EmbeddingCache, encode_cached
from contrastkit.evaluation.datafiles import split_file


@dataclass(frozen=True)
class StsData:
    """Scored sentence pairs of one split; ``subsets`` are (name, start, end) data-row ranges."""

    sentences1: list[str]
    sentences2: list[str]
    scores: list[float]
    path: Path
    subsets: tuple[tuple[str, int, int], ...] = ()

    def __len__(self) -> int:
        return len(self.scores)


@dataclass(frozen=True)
class StsResult:
    """Correlations (``metrics``), the per-pair ``cosine`` and ``gold`` scores, and per-subset metrics."""

    metrics: dict[str, float]
    cosine: list[float]
    gold: list[float]
    subsets: dict[str, dict[str, float]] = field(default_factory=dict)


def read_sts(folder: str | Path, split: str = "test") -> StsData:
    """The pairs of ``folder/<split>.tsv``; DataError (file, row, problem) for a missing file, column or bad score."""
    path = split_file(folder, split)
    examples = load_examples(path, kind="graded")
    if len(examples) < 2:
        raise DataError(f"{len(examples)} data row(s): a correlation needs at least 2 pairs", path=path)
    scores = graded_scores(examples, path)
    if len(set(scores)) == 1:
        raise DataError(f"every gold score is {scores[0]}: correlations are undefined", path=path)
    subsets = _subsets(Path(folder) / "meta.json", split, len(examples))
    return StsData([ex.anchor for ex in examples], [ex.positives[0] for ex in examples], scores, path, subsets)


def graded_scores(examples: Sequence[Example], path: Path) -> list[float]:
    """Each example's score as a float; DataError (file, row) for one without (a reader of ``kind="graded"``
    gives every row one)."""
    scores: list[float] = []
    for row, ex in enumerate(examples, 1):
        if ex.score is None:
            raise DataError("missing score", path=path, row=row)
        scores.append(float(ex.score))
    return scores


def _subsets(meta: Path, split: str, n: int) -> tuple[tuple[str, int, int], ...]:
    """Subset row ranges from meta.json (test split only); anything unusable is ignored (it is only a breakdown)."""
    if split != "test" or not meta.is_file():
        return ()
    try:
        entries = parse_json(meta.read_text(encoding="utf-8")).get("subsets") or []
        out = tuple((str(e["subset"]), int(e["row_range"][0]), int(e["row_range"][1])) for e in entries)
    except (OSError, ValueError, OverflowError, KeyError, TypeError, IndexError, AttributeError):
        return ()  # DataError (bad JSON, nesting, huge ints) is a ValueError; int(inf) an OverflowError
    return out if all(0 <= a < b <= n for _, a, b in out) else ()


def evaluate_sts(
    encoder: Any,
    data: StsData,
    *,
    batch_size: int = 64,
    prompt_name: str | None = None,
    cache: EmbeddingCache | None = None,
) -> StsResult:
    """Spearman and Pearson of the pairs' cosine similarities against the gold scores (see the module docstring)."""
    n = len(data)
    emb = encode_cached(
        encoder, [*data.sentences1, *data.sentences2], batch_size=batch_size, prompt_name=prompt_name, cache=cache
    )
    cosine = paired_cosine(emb[:n], emb[n:]).tolist()
    subsets = {
        name: _correlations(cosine[a:b], data.scores[a:b])
        for name, a, b in data.subsets
        if len(set(data.scores[a:b])) > 1
    }
    return StsResult(_correlations(cosine, data.scores), cosine, list(data.scores), subsets)


def _correlations(pred: Sequence[float], gold: Sequence[float]) -> dict[str, float]:
    return {"spearman": spearman(pred, gold), "pearson": pearson(pred, gold)}


Scores = Sequence[float] | np.ndarray | Tensor
"""Scores as the correlations take them: a sequence, a 1-d array or a 1-d CPU tensor."""


def rankdata(values: Scores) -> np.ndarray:
    """1-based ranks in increasing order, tied values sharing the mean of their ranks (float64)."""
    x = np.asarray(values, dtype=np.float64)
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), dtype=np.float64)
    sorted_x = x[order]
    start = 0
    for end in range(1, len(x) + 1):
        if end == len(x) or sorted_x[end] != sorted_x[start]:
            ranks[order[start:end]] = (start + 1 + end) / 2  # mean of ranks start+1 .. end
            start = end
    return ranks


def pearson(x: Scores, y: Scores) -> float:
    """Pearson correlation in float64; ValueError for unequal lengths, fewer than 2 values or a constant input."""
    a, b = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) < 2:
        raise ValueError(f"pearson needs two 1-D sequences of equal length >= 2, got shapes {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("pearson: non-finite values")
    a, b = a - a.mean(), b - b.mean()
    denominator = math.sqrt(float(a @ a) * float(b @ b))
    if denominator == 0.0:
        raise ValueError("pearson is undefined for a constant input (every value equal)")
    return max(-1.0, min(1.0, float(a @ b) / denominator))


def spearman(x: Scores, y: Scores, *, undefined: float | None = None) -> float:
    """Spearman's rank correlation: :func:`pearson` of :func:`rankdata` (ties get mean ranks).

    ``x`` and ``y`` are sequences or 1-d CPU tensors. A constant input has no
    rank correlation: ValueError, or ``undefined`` when given (a collapsed
    model logged as NaN during training rather than stopping the run).
    """
    if len(x) != len(y):
        raise ValueError(f"spearman needs sequences of equal length, got {len(x)} and {len(y)}")
    rx, ry = rankdata(x), rankdata(y)
    if undefined is not None and len(rx) >= 2 and (np.ptp(rx) == 0 or np.ptp(ry) == 0):
        return undefined
    return pearson(rx, ry)


def paired_cosine(first: Tensor, second: Tensor) -> Tensor:
    """``cos(first_i, second_i)`` of two ``(n, d)`` embedding matrices, ``(n,)`` float64.

    Raises:
        ValueError: the shapes differ or an embedding is not finite.
    """
    if first.shape != second.shape or first.ndim != 2:
        raise ValueError(
            f"paired_cosine needs two (n, d) matrices of one shape, got {tuple(first.shape)} and {tuple(second.shape)}"
        )
    a, b = first.double(), second.double()
    if not (a.isfinite().all() and b.isfinite().all()):
        raise ValueError("the encoder returned non-finite embeddings")
    return (F.normalize(a, dim=-1) * F.normalize(b, dim=-1)).sum(-1)
