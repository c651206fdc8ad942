"""Evaluation callbacks run during training: retrieval on a BEIR folder, Spearman correlation on STS pairs.

Both are :class:`~contrastkit.training.callbacks.Callback` s whose ``on_eval``
returns scalars, so the loop logs them as ``eval/<name>/<metric>`` in
``metrics.jsonl`` (and TensorBoard) every ``train.eval_every`` steps and at
the end, in eval mode, without gradient and without touching the random
generators. They are built from the config's ``eval`` section by
:func:`build_evaluation_callbacks` (the data is read then, before training,
so a bad path fails at once) or constructed directly and passed to
``train(config, callbacks=[...])``. Under data parallelism only rank 0
evaluates.

* :class:`RetrievalEvaluation`: ``contrastkit.evaluation.evaluate_retrieval``
  (exact cosine search, trec_eval metrics) on one split of a BEIR folder;
  default metrics ``ndcg@10``, ``mrr@10``, ``recall@100``. A dual encoder
  embeds the queries with its anchor tower and the documents with its
  candidate tower.
* :class:`STSEvaluation`: Spearman rank correlation between the cosine
  similarity of each sentence pair and its gold score (:func:`spearman`,
  ties given their average rank). A dual encoder embeds both sentences with
  its anchor tower (``encode``'s default side).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from contrastkit.data.beir import load_beir
from contrastkit.data.errors import DataError
from contrastkit.data.readers import load_examples
from contrastkit.encoders.auto import resolve_model_path
from contrastkit.encoders.base import Encoder
from contrastkit.encoders.dual import towers
from contrastkit.evaluation.retrieval import evaluate_retrieval
from contrastkit.evaluation.sts import graded_scores, paired_cosine, spearman
from contrastkit.scale.distributed import world
from contrastkit.training.build import resolve_prompt
from contrastkit.training.callbacks import Callback, CallbackContext
from contrastkit.training.config import EvalConfig, ModelConfig, RetrievalEvalConfig, STSEvalConfig
from contrastkit.training.merge import MergeMethod, merge_folders
from contrastkit.training.schema import ConfigError


def _k(metric: str) -> int | None:
    return int(metric.split("@")[1]) if "@" in metric else None


class RetrievalEvaluation(Callback):
    """Retrieval metrics of the training encoder on fixed queries, corpus and qrels; see the module docstring.

    Args:
        queries, corpus, qrels: as :func:`~contrastkit.evaluation.retrieval.evaluate_retrieval` takes them.
        name: the prefix of the logged metrics (``<name>/ndcg@10``).
        metrics: ``ndcg@k``, ``mrr@k``, ``recall@k`` or ``map``.
        batch_size: encoding batch size.
        query_prompt_name, doc_prompt_name: prompt names of the encoder (None: no prompt).
    """

    def __init__(
        self,
        queries: Mapping[str, str],
        corpus: Mapping[str, str],
        qrels: Mapping[str, Mapping[str, int]],
        *,
        name: str = "retrieval",
        metrics: Sequence[str] = ("ndcg@10", "mrr@10", "recall@100"),
        batch_size: int = 64,
        query_prompt_name: str | None = None,
        doc_prompt_name: str | None = None,
    ) -> None:
        self.queries, self.corpus, self.qrels = dict(queries), dict(corpus), {q: dict(d) for q, d in qrels.items()}
        self.name, self.metrics = name, tuple(metrics)
        self.k_values = tuple(sorted({k for k in map(_k, self.metrics) if k is not None} or {10}))
        self.batch_size = batch_size
        self.query_prompt_name, self.doc_prompt_name = query_prompt_name, doc_prompt_name

    @classmethod
    def from_config(
        cls, config: RetrievalEvalConfig, model: ModelConfig, key: str = "eval.retrieval"
    ) -> RetrievalEvaluation:
        """Read the BEIR split of ``config.path`` and cut it to ``max_queries`` / ``max_docs``."""
        path = config.path
        assert path is not None, "RetrievalEvalConfig requires path"
        try:
            data = load_beir(path, config.split)
        except (FileNotFoundError, DataError) as err:
            raise ConfigError(f"{key}.path", str(err)) from None
        qids = [q for q, docs in data.qrels.items() if any(g > 0 for g in docs.values())]
        if not qids:
            raise ConfigError(f"{key}.split", f"no query of {config.path} ({config.split}) has a relevant document")
        qids = qids[: config.max_queries]
        corpus = data.corpus
        if config.max_docs is not None and config.max_docs < len(corpus):
            judged = {d for q in qids for d in data.qrels[q]}
            others = [d for d in corpus if d not in judged][: max(0, config.max_docs - len(judged))]
            keep = judged | set(others)
            corpus = {d: t for d, t in corpus.items() if d in keep}
        return cls(
            {q: data.queries[q] for q in qids},
            corpus,
            {q: data.qrels[q] for q in qids},
            name=config.name or Path(path).name,
            metrics=config.metrics,
            batch_size=config.batch_size,
            query_prompt_name=config.query_prompt_name or model.anchor_prompt_name,
            doc_prompt_name=config.doc_prompt_name or model.candidate_prompt_name,
        )

    def on_eval(self, ctx: CallbackContext) -> dict[str, float] | None:
        if world()[0] != 0:
            return None
        queries, documents = towers(ctx.encoder)
        result = evaluate_retrieval(
            queries,
            self.queries,
            self.corpus,
            self.qrels,
            k_values=self.k_values,
            batch_size=self.batch_size,
            query_prompt_name=self.query_prompt_name,
            doc_prompt_name=self.doc_prompt_name,
            doc_encoder=documents,
        )
        return {f"{self.name}/{m}": result.metrics[m] for m in self.metrics}


class STSEvaluation(Callback):
    """Spearman correlation of cosine similarities with gold scores; see the module docstring.

    Args:
        pairs: ``(sentence1, sentence2)`` per pair.
        scores: the gold score of each pair.
        name: the prefix of the logged metric (``<name>/spearman``).
        batch_size: encoding batch size.
        prompt_name: prompt name of the encoder for both sentences (None: no prompt).
    """

    def __init__(
        self,
        pairs: Sequence[tuple[str, str]],
        scores: Sequence[float],
        *,
        name: str = "sts",
        batch_size: int = 64,
        prompt_name: str | None = None,
    ) -> None:
        if len(pairs) != len(scores) or len(pairs) < 2:
            raise ValueError(f"need as many scores as pairs, at least 2; got {len(pairs)} pairs, {len(scores)} scores")
        self.pairs, self.scores = list(pairs), torch.tensor(list(scores), dtype=torch.float64)
        self.name, self.batch_size, self.prompt_name = name, batch_size, prompt_name

    @classmethod
    def from_config(cls, config: STSEvalConfig, model: ModelConfig, key: str = "eval.sts") -> STSEvaluation:
        """Read the graded pairs of ``config.path`` (first ``max_pairs``)."""
        path = config.path
        assert path is not None, "STSEvalConfig requires path"
        try:
            examples = load_examples(path, kind="graded", columns=config.columns)[: config.max_pairs]
            scores = graded_scores(examples, Path(path))
        except (FileNotFoundError, DataError, ValueError) as err:
            raise ConfigError(f"{key}.path", str(err)) from None
        if len(examples) < 2:
            raise ConfigError(f"{key}.path", f"{config.path}: needs at least 2 scored pairs, found {len(examples)}")
        return cls(
            [(ex.anchor, ex.positives[0]) for ex in examples],
            scores,
            name=config.name or Path(path).name.split(".")[0],
            batch_size=config.batch_size,
            prompt_name=config.prompt_name or model.anchor_prompt_name,
        )

    def on_eval(self, ctx: CallbackContext) -> dict[str, float] | None:
        if world()[0] != 0:
            return None
        encoder = ctx.encoder
        texts = sorted({t for pair in self.pairs for t in pair})
        index = {t: i for i, t in enumerate(texts)}
        emb = encoder.encode(texts, batch_size=self.batch_size, prompt_name=self.prompt_name)
        a = emb[torch.tensor([index[s] for s, _ in self.pairs])]
        b = emb[torch.tensor([index[s] for _, s in self.pairs])]
        # a collapsed model (constant similarities) is logged as NaN rather than stopping the run
        return {f"{self.name}/spearman": spearman(paired_cosine(a, b), self.scores, undefined=float("nan"))}


class KeepBest(Callback):
    """Runs evaluation callbacks and keeps the model of the best value of each named metric.

    ``on_eval`` returns the wrapped callbacks' results unchanged. When one of
    ``metrics`` (a ``<name>/<metric>`` key, higher is better; NaN never
    counts) beats its best so far, rank 0 saves the evaluated encoder to
    ``best-<name>-<metric>/`` in the run folder (atomically, replacing the
    previous best) and rewrites ``best.json``: ``{metric: {"step", "value",
    "folder"}}``. A resumed run reads ``best.json`` back, so a best from
    before the interruption is only replaced by a better one.
    """

    def __init__(
        self,
        evaluations: Sequence[Callback],
        metrics: Sequence[str],
        *,
        merge: MergeMethod | None = None,
        merge_base: str | None = None,
    ) -> None:
        self.evaluations, self.metrics = list(evaluations), tuple(metrics)
        self.merge, self.merge_base = merge, merge_base
        self.best: dict[str, dict[str, Any]] | None = None  # best.json: metric -> {step, value, folder}

    @staticmethod
    def folder_name(metric: str) -> str:
        """``best-<name>-<metric>``: the metric key with ``/`` as ``-``."""
        return "best-" + metric.replace("/", "-")

    def on_eval(self, ctx: CallbackContext) -> dict[str, float] | None:
        results: dict[str, float] = {}
        for cb in self.evaluations:
            results.update(cb.on_eval(ctx) or {})
        if world()[0] != 0:
            return results or None
        record = ctx.output_dir / "best.json"
        if self.best is None:
            self.best = json.loads(record.read_text(encoding="utf-8")) if record.is_file() else {}
        changed = False
        for metric in self.metrics:
            value = results.get(metric)
            if value is None or math.isnan(value):
                continue
            old = self.best.get(metric)
            if old is None or value > float(old["value"]):
                folder = self.folder_name(metric)
                ctx.encoder.save(ctx.output_dir / folder)
                self.best[metric] = {"step": ctx.step, "value": value, "folder": folder}
                changed = True
        if changed:
            tmp = record.with_suffix(".json.tmp")
            tmp.write_text(json.dumps(self.best, indent=2) + "\n", encoding="utf-8")
            os.replace(tmp, record)
        return results or None

    def on_train_end(self, ctx: CallbackContext) -> None:
        """With ``merge``: merge the distinct kept folders into ``merged/`` (rank 0; after the final evaluation)."""
        if self.merge is None or world()[0] != 0 or not self.best:
            return
        folders = list(dict.fromkeys(str(entry["folder"]) for entry in self.best.values()))
        merge_folders(
            [ctx.output_dir / f for f in folders], ctx.output_dir / "merged", method=self.merge, base=self.merge_base
        )


def build_evaluation_callbacks(config: EvalConfig, model: ModelConfig, encoder: Encoder) -> list[Callback]:
    """The callbacks the ``eval`` section asks for (data read now); prompt names checked against ``encoder``.

    With ``keep_best``, one :class:`KeepBest` wrapping them; every named metric must be one the sets log.
    """
    callbacks: list[Callback] = []
    logged: dict[str, str] = {}  # metric key -> the config key of the set logging it
    retrievals = [("eval.retrieval", config.retrieval)] if config.retrieval is not None else []
    retrievals += [(f"eval.retrieval_sets[{i}]", c) for i, c in enumerate(config.retrieval_sets)]
    stss = [("eval.sts", config.sts)] if config.sts is not None else []
    stss += [(f"eval.sts_sets[{i}]", c) for i, c in enumerate(config.sts_sets)]
    sets = [key for key, _ in retrievals] + [key for key, _ in stss]
    if sets and not isinstance(encoder, Encoder):  # model.kind: cross builds a pair scorer (training.build)
        raise ConfigError(
            sets[0], f"a {type(encoder).__name__} (cross-encoder) scores pairs and embeds no text to evaluate"
        )
    for key, cfg in retrievals:
        retrieval = RetrievalEvaluation.from_config(cfg, model, key)
        query_tower, doc_tower = towers(encoder)
        resolve_prompt(query_tower, retrieval.query_prompt_name, f"{key}.query_prompt_name")
        resolve_prompt(doc_tower, retrieval.doc_prompt_name, f"{key}.doc_prompt_name")
        _claim(logged, [f"{retrieval.name}/{m}" for m in retrieval.metrics], key)
        callbacks.append(retrieval)
    for key, scfg in stss:
        sts = STSEvaluation.from_config(scfg, model, key)
        resolve_prompt(encoder, sts.prompt_name, f"{key}.prompt_name")
        _claim(logged, [f"{sts.name}/spearman"], key)
        callbacks.append(sts)
    if not config.keep_best:
        return callbacks
    for i, metric in enumerate(config.keep_best):
        if metric not in logged:
            known = ", ".join(logged) or "none: add eval.sts or eval.retrieval sets"
            raise ConfigError(f"eval.keep_best[{i}]", f"{metric!r} is not a logged metric (logged: {known})")
    base = (config.merge_base or model.path) if config.merge_best not in (None, "uniform") else None
    if base is not None:
        try:
            resolve_model_path(base)
        except ValueError as err:
            raise ConfigError("eval.merge_base", str(err)) from None
    return [KeepBest(callbacks, config.keep_best, merge=config.merge_best, merge_base=base)]


def _claim(logged: dict[str, str], metrics: Sequence[str], key: str) -> None:
    """Record that ``key`` logs ``metrics``; two sets logging one metric name is a ConfigError (set ``name``)."""
    for metric in metrics:
        if metric in logged:
            raise ConfigError(
                f"{key}.name", f"{metric!r} is logged by {logged[metric]} too; give the sets distinct names"
            )
        logged[metric] = key
