"""The ``eval`` section of the training config: retrieval and STS evaluation during training."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from contrastkit.training.schema import require as _check

_RANKING_METRIC = re.compile(r"^(?:(?:ndcg|mrr|recall)@[1-9][0-9]*|map)$")


@dataclass(frozen=True)
class RetrievalEvalConfig:
    """Retrieval evaluation on a BEIR folder (``eval.retrieval``), logged as ``eval/<name>/<metric>``.

    ``path`` is a BEIR folder (``corpus.jsonl``, ``queries.jsonl``,
    ``qrels/<split>.tsv``); ``name`` defaults to the folder's name.
    ``max_queries`` keeps the first judged queries (qrels order);
    ``max_docs`` caps the corpus at the evaluated queries' judged documents
    plus the first others in file order (a cheaper, easier proxy; null: the
    whole corpus). ``metrics`` are ``ndcg@k``, ``mrr@k``, ``recall@k`` or
    ``map``. Prompt names null use ``model.anchor_prompt_name`` (queries) and
    ``model.candidate_prompt_name`` (documents).
    """

    path: str | None = None
    split: str = "test"
    name: str | None = None
    max_queries: int | None = None
    max_docs: int | None = None
    batch_size: int = 64
    metrics: tuple[str, ...] = ("ndcg@10", "mrr@10", "recall@100")
    query_prompt_name: str | None = None
    doc_prompt_name: str | None = None

    def __post_init__(self) -> None:
        _check(self.path is not None, "path", "required: a BEIR folder (corpus.jsonl, queries.jsonl, qrels/)")
        _check(self.max_queries is None or self.max_queries >= 1, "max_queries", "must be >= 1 (or null for all)")
        _check(self.max_docs is None or self.max_docs >= 1, "max_docs", "must be >= 1 (or null for all)")
        _check(self.batch_size >= 1, "batch_size", "must be >= 1")
        _check(len(self.metrics) > 0, "metrics", "must name at least one metric")
        bad = [m for m in self.metrics if not _RANKING_METRIC.match(m)]
        _check(not bad, "metrics", f"unknown {bad}; use ndcg@k, mrr@k, recall@k or map")


@dataclass(frozen=True)
class STSEvalConfig:
    """STS evaluation (``eval.sts``): Spearman correlation of cosine similarity with gold scores.

    ``path`` is a TSV/CSV/JSONL file of ``sentence1``, ``sentence2``,
    ``score`` (``columns`` maps other names, as in ``data.columns``);
    ``name`` defaults to the file's name without suffix; ``max_pairs``
    keeps the first pairs. Both sentences get ``prompt_name`` (null:
    ``model.anchor_prompt_name``). Logged as ``eval/<name>/spearman``.
    """

    path: str | None = None
    name: str | None = None
    columns: dict[str, str] | None = None
    max_pairs: int | None = None
    batch_size: int = 64
    prompt_name: str | None = None

    def __post_init__(self) -> None:
        _check(self.path is not None, "path", "required: a file of sentence1, sentence2, score")
        _check(self.max_pairs is None or self.max_pairs >= 2, "max_pairs", "must be >= 2 (or null for all)")
        _check(self.batch_size >= 1, "batch_size", "must be >= 1")


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation during training, every ``train.eval_every`` steps and at the end (all optional).

    ``retrieval_sets`` and ``sts_sets`` are further dev sets, each written as
    ``retrieval`` / ``sts`` (one per task of a multi-task run). ``keep_best``
    names logged metrics (``<name>/<metric>``, e.g. ``stsb-dev/spearman``):
    the model of the evaluation with the highest value of each is kept in
    ``best-<name>-<metric>/`` of the run folder and listed in ``best.json``
    (usable as ``contrastkit merge`` inputs). Choose them on dev sets only.
    ``merge_best`` (a ``contrastkit merge`` method) merges the kept models
    after training into ``merged/``, with ``merge_base`` (default:
    ``model.path``) as the pre-trained model.
    """

    retrieval: RetrievalEvalConfig | None = None
    sts: STSEvalConfig | None = None
    retrieval_sets: tuple[RetrievalEvalConfig, ...] = ()
    sts_sets: tuple[STSEvalConfig, ...] = ()
    keep_best: tuple[str, ...] = ()
    merge_best: Literal["uniform", "task-arithmetic", "ties", "delta-guided"] | None = None
    merge_base: str | None = None

    def __post_init__(self) -> None:
        _check(self.merge_best is None or len(self.keep_best) > 0, "merge_best", "needs eval.keep_best (what to merge)")
        _check(self.merge_base is None or self.merge_best is not None, "merge_base", "needs eval.merge_best")
