"""The task registry: a task type name -> how to read its data folder and how to score an encoder on it.

| type | data folder | metrics |
|---|---|---|
| ``sts`` | ``<split>.tsv``: sentence1, sentence2, score | spearman, pearson |
| ``retrieval`` | BEIR: corpus, queries, qrels/<split>.tsv | ndcg@k, mrr@k, recall@k (k = 1, 10, 100), map |
| ``reasoning`` | BEIR (+ multiple-choice originals) | retrieval metrics, accuracy@1; also ``.../instruction`` |
| ``classification`` | ``train`` + ``<split>``: text, label | accuracy, f1, knn_accuracy, knn_f1 |
| ``clustering`` | ``<split>``: text, label [, group] | v_measure, homogeneity, completeness |
| ``pair-classification`` | ``<split>``: sentence1, sentence2, label | ap, accuracy, f1, precision, recall |
| ``rerank`` | BEIR + a first stage (BM25, bi-encoder, TREC run) | retrieval metrics, after and ``first_stage/`` |

Metrics are fractions in [0, 1] (correlations in [-1, 1]). The runners live in
:mod:`~contrastkit.evaluation.sts`, :mod:`~contrastkit.evaluation.retrieval`,
:mod:`~contrastkit.evaluation.reasoning`, :mod:`~contrastkit.evaluation.classification`,
:mod:`~contrastkit.evaluation.clustering`, :mod:`~contrastkit.evaluation.pair_classification` and
:mod:`~contrastkit.evaluation.rerank` (whose model is a cross-encoder: its spec's ``load_model``).

Running a task has two phases, so that a malformed folder fails before a
model is loaded: :func:`load_task_data` reads and checks the folder (a
:class:`~contrastkit.data.errors.DataError` naming file, row and problem), and
:func:`run_task` encodes (through a :class:`~contrastkit.evaluation.cache.CachedEncoder`,
so texts shared between tasks or runs in a process are encoded once) and scores.

Prompts (instructions): symmetric tasks use ``prompt_name``, by default the
task type name when the encoder has a prompt of that name (e.g. ``"sts"``);
retrieval and reasoning use ``query_prompt_name`` / ``doc_prompt_name``, by
default ``"query"`` and the first of ``"document"``, ``"passage"``, ``"corpus"``
(sentence-transformers' ``encode_document`` order), ``"doc"`` the encoder has.
An empty name (``""``) means no prompt, default or not. Task-specific keyword arguments (e.g. ``k`` for
classification, ``instruction`` for reasoning) go in ``EvalOptions.params``.

The result is a :class:`TaskResult`, whose JSON layout is exactly
``{"task": ..., "data": ..., "split": ..., "metrics": {name: float}}``.
"""

from __future__ import annotations

import importlib
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contrastkit.data.errors import DataError
from contrastkit.encoders.base import DOCUMENT_PROMPT_NAMES
from contrastkit.errors import UsageError
from contrastkit.evaluation.cache import CachedEncoder, EmbeddingCache
from contrastkit.objectives.registry import NameRegistry

JSON_KEYS = ("task", "data", "split", "metrics")


@dataclass(frozen=True)
class TaskResult:
    """One task's scores; ``details`` (the task's own result object) and ``seconds`` are not serialised."""

    task: str
    data: str
    split: str
    metrics: dict[str, float]
    details: Any = field(default=None, compare=False, repr=False)
    seconds: float = field(default=0.0, compare=False)

    def to_json(self) -> dict[str, Any]:
        """``{"task", "data", "split", "metrics"}``, in that order."""
        return {"task": self.task, "data": self.data, "split": self.split, "metrics": dict(self.metrics)}

    @classmethod
    def from_json(cls, obj: Any, *, source: str = "results") -> TaskResult:
        """Parse :meth:`to_json`'s layout; ValueError naming ``source`` for anything else."""
        if not isinstance(obj, dict) or set(obj) != set(JSON_KEYS):
            keys = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
            raise UsageError(f"{source}: expected an object with keys {list(JSON_KEYS)}, got {keys}")
        if not all(isinstance(obj[k], str) for k in JSON_KEYS[:3]) or not isinstance(obj["metrics"], dict):
            raise UsageError(f"{source}: task, data and split must be strings and metrics an object")
        metrics = {}
        for name, value in obj["metrics"].items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise UsageError(f"{source}: metric {name!r} is not a number: {value!r}")
            try:
                metrics[name] = float(value)
            except OverflowError:  # an int beyond float range
                raise UsageError(f"{source}: metric {name!r} is too large for a float") from None
        return cls(obj["task"], obj["data"], obj["split"], metrics)


@dataclass(frozen=True)
class EvalOptions:
    """How to run a task: batch size, prompts, the embedding cache and task-specific ``params``."""

    batch_size: int = 64
    prompt_name: str | None = None
    query_prompt_name: str | None = None
    doc_prompt_name: str | None = None
    cache: EmbeddingCache | None = None
    params: Mapping[str, Any] = field(default_factory=dict)


Loader = Callable[[Path, str], Any]
Runner = Callable[[Any, Any, EvalOptions], tuple[dict[str, float], Any]]
ModelLoader = Callable[..., Any]


@dataclass(frozen=True)
class TaskSpec:
    """A task type: ``load(folder, split) -> data``, ``run(encoder, data, options) -> (metrics, details)``.

    ``load_model(path, max_length=...)`` loads the model the task scores; None means a bi-encoder
    (:func:`contrastkit.encoders.load_encoder`). ``options`` names the task-specific
    ``EvalOptions.params`` its runner takes (``contrastkit eval --option``); None leaves them unchecked.
    """

    name: str
    description: str
    load: Loader
    run: Runner
    default_split: str = "test"
    load_model: ModelLoader | None = None
    options: tuple[str, ...] | None = None


TASKS: NameRegistry[TaskSpec] = NameRegistry("task type", normalize=lambda name: name.strip().lower().replace("_", "-"))


def check_params(task: str, params: Mapping[str, Any]) -> None:
    """ValueError naming the unknown keys of ``params`` for ``task`` and listing its valid options."""
    spec = get_task(task)
    unknown = sorted(set(params) - set(spec.options)) if spec.options is not None else []
    if unknown:
        valid = ", ".join(spec.options) if spec.options else "none (it takes no options)"
        raise UsageError(f"task {spec.name}: unknown option(s) {', '.join(unknown)}; valid options: {valid}")


def register_task(spec: TaskSpec) -> TaskSpec:
    """Add ``spec`` under ``spec.name`` (a duplicate name is a ValueError)."""
    return TASKS.add(spec.name, spec)


def get_task(name: str) -> TaskSpec:
    """The task type ``name`` (``_`` and ``-`` are interchangeable); UnknownNameError listing the known types."""
    return TASKS[name]


def task_names() -> list[str]:
    """The registered task type names, in registration order."""
    return TASKS.names()


def load_task_data(task: str, data: str | Path, split: str | None = None) -> Any:
    """Read and check ``data`` for ``task`` (DataError for a missing or malformed folder)."""
    spec = get_task(task)
    try:
        return spec.load(Path(data), split or spec.default_split)
    except FileNotFoundError as err:  # some readers raise it for a missing file: one error type for the CLI
        raise DataError(str(err)) from None


def run_task(
    task: str,
    encoder: Any,
    data: str | Path,
    *,
    split: str | None = None,
    options: EvalOptions | None = None,
    loaded: Any = None,
) -> TaskResult:
    """Score ``encoder`` on ``data`` for ``task``; ``loaded`` is :func:`load_task_data`'s result when already read."""
    spec = get_task(task)
    options = options or EvalOptions()
    if options.batch_size < 1:
        raise UsageError(f"batch_size must be >= 1, got {options.batch_size}")
    check_params(spec.name, options.params)
    split = split or spec.default_split
    if loaded is None:
        loaded = load_task_data(spec.name, data, split)
    cached = CachedEncoder(encoder, options.cache)
    start = time.perf_counter()
    metrics, details = spec.run(cached, loaded, options)
    bad = {k: v for k, v in metrics.items() if not isinstance(v, (int, float)) or not math.isfinite(v)}
    if bad:
        raise ValueError(f"task {spec.name}: non-finite or non-numeric metrics {bad}")
    metrics = {str(k): float(v) for k, v in metrics.items()}
    return TaskResult(spec.name, str(data), split, metrics, details, time.perf_counter() - start)


# ---------------------------------------------------------------- prompts
def symmetric_prompt(encoder: Any, task: str, options: EvalOptions) -> str | None:
    """``options.prompt_name`` (``""``: none), else ``task`` when the encoder has a prompt of that name, else None."""
    if options.prompt_name is not None:
        return options.prompt_name or None
    return task if task in (getattr(encoder, "prompts", None) or {}) else None


def retrieval_prompts(encoder: Any, options: EvalOptions) -> tuple[str | None, str | None]:
    """(query prompt name, document prompt name): the options' (``""``: none), else the conventional names."""
    prompts = getattr(encoder, "prompts", None) or {}
    query, doc = options.query_prompt_name, options.doc_prompt_name
    if query is None:
        query = "query" if "query" in prompts else None
    if doc is None:
        doc = next((n for n in DOCUMENT_PROMPT_NAMES if n in prompts), None)
    return query or None, doc or None


# ---------------------------------------------------------------- built-in task types
def _load_sts(folder: Path, split: str) -> Any:
    from contrastkit.evaluation.sts import read_sts

    return read_sts(folder, split)


def _run_sts(encoder: Any, data: Any, options: EvalOptions) -> tuple[dict[str, float], Any]:
    from contrastkit.evaluation.sts import evaluate_sts

    prompt = symmetric_prompt(encoder, "sts", options)
    result = evaluate_sts(encoder, data, batch_size=options.batch_size, prompt_name=prompt, **options.params)
    return result.metrics, result


def _load_beir(folder: Path, split: str) -> Any:
    from contrastkit.data.beir import load_beir

    return load_beir(folder, split)


def _run_retrieval(encoder: Any, data: Any, options: EvalOptions) -> tuple[dict[str, float], Any]:
    from contrastkit.evaluation.retrieval import evaluate_retrieval

    query, doc = retrieval_prompts(encoder, options)
    queries, documents = _query_and_document_encoders(encoder)
    result = evaluate_retrieval(
        queries, data.queries, data.corpus, data.qrels, batch_size=options.batch_size,
        query_prompt_name=query, doc_prompt_name=doc, doc_encoder=documents, **options.params,
    )  # fmt: skip
    return result.metrics, result


def _query_and_document_encoders(encoder: CachedEncoder) -> tuple[CachedEncoder, CachedEncoder]:
    """A dual encoder's anchor tower for queries and candidate tower for documents (same cache), else ``encoder``."""
    from contrastkit.encoders.dual import DualEncoder

    inner = encoder.encoder
    if not isinstance(inner, DualEncoder):
        return encoder, encoder
    return CachedEncoder(inner.anchor, encoder.cache), CachedEncoder(inner.candidate, encoder.cache)


def _reasoning_module() -> Any:
    try:
        return importlib.import_module("contrastkit.evaluation.reasoning")
    except ImportError as err:
        raise ValueError(f"task type 'reasoning' is not available: contrastkit.evaluation.reasoning ({err})") from None


def _load_reasoning(folder: Path, split: str) -> Any:
    _reasoning_module()
    _load_beir(folder, split)  # fail on a malformed folder before a model is loaded
    return folder, split


def _run_reasoning(encoder: Any, data: Any, options: EvalOptions) -> tuple[dict[str, float], Any]:
    folder, split = data
    query, doc = retrieval_prompts(encoder, options)
    result = _reasoning_module().run_reasoning(
        encoder, folder, split, batch_size=options.batch_size, query_prompt_name=query, doc_prompt_name=doc,
        **options.params,
    )  # fmt: skip
    return result.metrics, result


def _load_classification(folder: Path, split: str) -> Any:
    from contrastkit.evaluation.datafiles import read_labelled

    if split == "train":
        raise UsageError("classification trains its probes on the 'train' split: evaluate on another split")
    return read_labelled(folder, "train"), read_labelled(folder, split)


def _run_classification(encoder: Any, data: Any, options: EvalOptions) -> tuple[dict[str, float], Any]:
    from contrastkit.evaluation.classification import evaluate_classification

    prompt = symmetric_prompt(encoder, "classification", options)
    result = evaluate_classification(
        encoder, *data, batch_size=options.batch_size, prompt_name=prompt, **options.params
    )
    return result.metrics, result


def _load_labelled(folder: Path, split: str) -> Any:
    from contrastkit.evaluation.datafiles import read_labelled

    return read_labelled(folder, split)


def _run_clustering(encoder: Any, data: Any, options: EvalOptions) -> tuple[dict[str, float], Any]:
    from contrastkit.evaluation.clustering import evaluate_clustering

    prompt = symmetric_prompt(encoder, "clustering", options)
    result = evaluate_clustering(encoder, data, batch_size=options.batch_size, prompt_name=prompt, **options.params)
    return result.metrics, result


def _load_pairs(folder: Path, split: str) -> Any:
    from contrastkit.evaluation.datafiles import read_pairs

    return read_pairs(folder, split)


def _run_pair_classification(encoder: Any, data: Any, options: EvalOptions) -> tuple[dict[str, float], Any]:
    from contrastkit.evaluation.pair_classification import evaluate_pair_classification

    prompt = symmetric_prompt(encoder, "pair-classification", options)
    result = evaluate_pair_classification(
        encoder, data, batch_size=options.batch_size, prompt_name=prompt, **options.params
    )
    return result.metrics, result


def _load_cross_encoder(path: str, *, max_length: int | None = None) -> Any:
    from contrastkit.encoders.cross import load_cross_encoder

    return load_cross_encoder(path, max_length=max_length)


def _run_rerank(encoder: Any, data: Any, options: EvalOptions) -> tuple[dict[str, float], Any]:
    """``params``: ``first_stage`` (``bm25``, default, or a bi-encoder folder / alias), ``run`` (a TREC run file,
    instead of ``first_stage``), ``top_k`` (100), ``alpha`` (1.0), ``save_run`` (write the reranked run here)."""
    from contrastkit.evaluation import rerank

    params = dict(options.params)
    unknown = set(params) - {"first_stage", "run", "top_k", "alpha", "save_run"}
    if unknown:
        raise UsageError(f"rerank: unknown option(s) {sorted(unknown)} (first_stage, run, top_k, alpha, save_run)")
    top_k = int(params.get("top_k", 100))
    first = _rerank_first_stage(data, params, options, top_k)
    cross = encoder.encoder if isinstance(encoder, CachedEncoder) else encoder
    result = rerank.evaluate_rerank(
        cross, data.queries, data.corpus, data.qrels, first, top_k=top_k, batch_size=options.batch_size,
        alpha=float(params.get("alpha", 1.0)),
    )  # fmt: skip
    if params.get("save_run"):
        rerank.write_trec_run(params["save_run"], result.rankings)
    return result.metrics, result


def _rerank_first_stage(data: Any, params: Mapping[str, Any], options: EvalOptions, top_k: int) -> Any:
    from contrastkit.evaluation import rerank

    if params.get("run"):
        return rerank.read_trec_run(params["run"])
    first_stage = str(params.get("first_stage", "bm25"))
    if first_stage == "bm25":
        return rerank.bm25_rankings(data.queries, data.corpus, top_k=top_k)
    from contrastkit.encoders import load_encoder

    retriever = CachedEncoder(load_encoder(first_stage), options.cache)
    query, doc = retrieval_prompts(retriever, options)  # the prompts are the first stage's
    judged = {q: data.queries[q] for q in data.qrels if any(g > 0 for g in data.qrels[q].values())}
    return rerank.dense_rankings(
        retriever, judged, data.corpus, top_k=top_k, batch_size=options.batch_size,
        query_prompt_name=query, doc_prompt_name=doc,
    )  # fmt: skip


_BUILTIN = (
    ("sts", "Spearman/Pearson of cosine vs gold similarity scores", _load_sts, _run_sts, ()),
    ("retrieval", "exact cosine search on a BEIR folder: nDCG, MRR, recall, MAP", _load_beir, _run_retrieval,
     ("k_values",)),
    ("reasoning", "RAR-b: full retrieval and multiple choice, +/- instruction", _load_reasoning, _run_reasoning,
     ("instruction", "task", "instruction_text", "multiple_choice", "k_values")),
    ("classification", "logistic-regression and kNN probes", _load_classification, _run_classification,
     ("methods", "k", "samples_per_label", "n_experiments", "max_iter", "seed")),
    ("clustering", "V-measure of k-means with k = number of labels", _load_labelled, _run_clustering,
     ("n_init", "seed")),
    ("pair-classification", "average precision of cosine for labelled pairs", _load_pairs, _run_pair_classification,
     ()),
)  # fmt: skip
for _name, _description, _load, _run, _options in _BUILTIN:
    register_task(TaskSpec(_name, _description, _load, _run, options=_options))
register_task(
    TaskSpec(
        "rerank",
        "a cross-encoder reranks a first stage's top-k (BM25, bi-encoder, TREC run): metrics before and after",
        _load_beir,
        _run_rerank,
        load_model=_load_cross_encoder,
        options=("first_stage", "run", "top_k", "alpha", "save_run"),
    )
)
