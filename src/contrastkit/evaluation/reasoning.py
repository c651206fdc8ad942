"""RAR-b, reasoning as retrieval: full-dataset retrieval and multiple-choice retrieval, with and without instruction.

The protocol of Xiao, Hudson and Al Moubayed, *RAR-b: Reasoning as Retrieval
Benchmark* (arXiv 2404.06347; thesis-methods.md section 3), on any
:class:`~contrastkit.encoders.base.Encoder`:

* **Full setting**: each question (query) ranks the *pooled* candidate answers
  of the whole dataset (the BEIR corpus) by cosine similarity, exact search;
  document text is ``(title + " " + text).strip()``; nDCG@10 is the primary
  metric (Recall@10 is also reported). Runs through
  :func:`contrastkit.evaluation.retrieval.evaluate_retrieval`, so the metrics
  and tie rule (equal scores: increasing document id) are those of
  ``contrastkit eval --task retrieval``.
* **Multiple-choice setting (MCR)**: each question ranks only its *own*
  candidates; the prediction is ``argmax cos(q, c)`` (ties: the first
  candidate); the metric is accuracy (``accuracy@1``).
* **Instruction modes**: without instruction the query is the question; with
  it, the query is ``(instruction + " " + question).strip()``. Candidates never
  get an instruction. Both modes are reported by default, as the spec asks.

Metric names, fractions in [0, 1]: the retrieval metrics of
:func:`evaluate_retrieval` (``ndcg@10``, ``recall@10``, ``mrr@10``, ``map``, ...)
and ``accuracy@1`` for MCR; runs with the instruction carry the suffix
``/instruction`` (``ndcg@10/instruction``, ``accuracy@1/instruction``).

Multiple-choice items come from a folder's original files
(:func:`load_multiple_choice`), PIQA's layout in ``shared/data/piqa``: the
files named by ``meta.json["original_files"]`` (else the one ``.jsonl`` and one
``.lst`` in ``original/``), ``valid.jsonl`` lines ``{"goal", "sol1", "sol2"}``
and ``valid-labels.lst`` (0 -> sol1, 1 -> sol2). Line i is question i of
``queries.jsonl``: its text must equal ``goal`` and its gold candidate
(stripped) the qrels document's text, else :class:`~contrastkit.data.errors.DataError`.
Items of other datasets can be built by hand and passed to
:func:`evaluate_multiple_choice`.

Encoding goes through :class:`~contrastkit.evaluation.cache.CachedEncoder`, so
each distinct (prompt, text) is encoded once: in the default
``instruction="both"`` run the corpus is encoded once, the questions twice
(plain, instructed), and MCR candidates that are corpus texts (PIQA: all of
them) reuse the corpus embeddings.

Example (a tiny in-memory multiple-choice set; ``encoder`` is any Encoder)::

    items = [MultipleChoiceItem("q1", "How to dry wet shoes?", ("Stuff them with paper.", "Freeze them."), 0)]
    result = evaluate_multiple_choice(encoder, items, instruction=RARB_INSTRUCTIONS["piqa"])
    result.accuracy   # fraction of questions whose gold candidate has the highest cosine
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from contrastkit.data.beir import BeirDataset, load_beir
from contrastkit.data.errors import DataError
from contrastkit.evaluation.cache import CachedEncoder, EmbeddingCache
from contrastkit.evaluation.multiple_choice import (
    MultipleChoiceItem,
    MultipleChoiceResult,
    _meta,
    evaluate_multiple_choice,
    load_multiple_choice,
)
from contrastkit.evaluation.rarb_instructions import (
    MODE_SUFFIX,
    RARB_INSTRUCTIONS,
    InstructionMode,
    instruction_for,
    with_instruction,
)
from contrastkit.evaluation.retrieval import RetrievalResult, evaluate_retrieval

if TYPE_CHECKING:  # only the type: importing the encoders package loads transformers
    from contrastkit.encoders.base import Encoder

__all__ = [  # the multiple-choice and instruction pieces live in their own modules; importable from here too
    "RARB_INSTRUCTIONS",
    "MultipleChoiceItem",
    "MultipleChoiceResult",
    "ReasoningResult",
    "evaluate_multiple_choice",
    "instruction_for",
    "load_multiple_choice",
    "run_reasoning",
    "with_instruction",
]


@dataclass(frozen=True)
class ReasoningResult:
    """What :func:`run_reasoning` measured.

    Attributes:
        task: the RAR-b task name used for the instruction (or the folder name).
        instruction: the instruction text, None when only the plain mode ran.
        metrics: every metric of every run, e.g. ``{"ndcg@10": ..., "accuracy@1": ...,
            "ndcg@10/instruction": ..., "accuracy@1/instruction": ...}``.
        retrieval: mode ("plain" or "instruction") -> full-setting result.
        multiple_choice: mode -> multiple-choice result (empty when the folder has no choices).
        num_queries, num_docs, num_questions: sizes of the two settings.
        encode_seconds: time spent encoding (cache hits are free); seconds: total wall time.
        notes: what was skipped and why.
    """

    task: str
    instruction: str | None
    metrics: dict[str, float]
    retrieval: dict[str, RetrievalResult]
    multiple_choice: dict[str, MultipleChoiceResult]
    num_queries: int
    num_docs: int
    num_questions: int
    encode_seconds: float
    seconds: float
    notes: list[str] = field(default_factory=list)


def run_reasoning(
    encoder: Encoder,
    path: str | Path,
    split: str = "test",
    *,
    instruction: InstructionMode = "both",
    task: str | None = None,
    instruction_text: str | None = None,
    multiple_choice: bool | None = None,
    k_values: Sequence[int] = (1, 10, 100),
    batch_size: int = 64,
    query_prompt_name: str | None = None,
    doc_prompt_name: str | None = None,
    cache: EmbeddingCache | None = None,
) -> ReasoningResult:
    """RAR-b on a BEIR folder: full-setting retrieval and multiple-choice, per instruction mode.

    This is the runner of ``contrastkit eval MODEL --task reasoning --data PATH``.

    Args:
        encoder: any Encoder (its own pooling, max length and normalisation are kept).
        path: a BEIR folder (``corpus.jsonl``, ``queries.jsonl``,
            ``qrels/<split>.tsv``), optionally with multiple-choice items
            (:func:`load_multiple_choice`).
        split: the qrels split (PIQA's ``test`` is its original validation split).
        instruction: ``False`` (plain queries only), ``True`` (instructed only)
            or ``"both"`` (default; the spec reports both).
        task: RAR-b task for the instruction lookup (:func:`instruction_for`);
            default ``meta.json["name"]`` of the folder, else the folder name.
        instruction_text: use this instruction instead of the lookup.
        multiple_choice: None runs MCR when the folder has items (a note
            otherwise); True requires them (DataError if absent); False skips it.
        k_values, batch_size: passed to :func:`evaluate_retrieval`.
        query_prompt_name, doc_prompt_name: the encoder's own prompts, if any
            (applied before the RAR-b instruction, as prefixes).
        cache: embedding cache (default: a new in-memory one for this call; a
            :class:`~contrastkit.evaluation.cache.CachedEncoder` keeps its own).

    Returns:
        :class:`ReasoningResult`; ``metrics`` has ``ndcg@10``, ``recall@10``,
        ``mrr@10``, ``map``, ... and ``accuracy@1`` per mode, the instructed
        ones suffixed ``/instruction``.

    Raises:
        FileNotFoundError / DataError: a missing or malformed folder (from the readers).
        KeyError: an instruction is needed and the task has none (pass ``instruction_text``).
        ValueError: a bad ``instruction`` value.
    """
    start = time.perf_counter()
    modes = _modes(instruction)
    folder = Path(path)
    data = load_beir(folder, split)
    task_name = task or _folder_name(folder)
    text = None
    if True in modes:
        text = instruction_text if instruction_text is not None else instruction_for(task_name)
    items, notes = _choices(folder, split, data, multiple_choice)
    cached = CachedEncoder(encoder, cache)
    corpus = {d: t.strip() for d, t in data.corpus.items()}  # RAR-b: (title + " " + text).strip()
    retrieval: dict[str, RetrievalResult] = {}
    mcr: dict[str, MultipleChoiceResult] = {}
    metrics: dict[str, float] = {}
    for mode in modes:
        name, used, suffix = ("instruction" if mode else "plain"), (text if mode else None), MODE_SUFFIX[mode]
        queries = {q: with_instruction(used, t) for q, t in data.queries.items()}
        retrieval[name] = evaluate_retrieval(
            cached, queries, corpus, data.qrels, k_values=k_values, batch_size=batch_size,
            query_prompt_name=query_prompt_name, doc_prompt_name=doc_prompt_name,
        )  # fmt: skip
        metrics.update({f"{k}{suffix}": v for k, v in retrieval[name].metrics.items()})
        if items:
            mcr[name] = evaluate_multiple_choice(
                cached, items, instruction=used, batch_size=batch_size, query_prompt_name=query_prompt_name,
                doc_prompt_name=doc_prompt_name,
            )  # fmt: skip
            metrics[f"accuracy@1{suffix}"] = mcr[name].accuracy
    first = next(iter(retrieval.values()))
    return ReasoningResult(
        task=task_name,
        instruction=text,
        metrics=metrics,
        retrieval=retrieval,
        multiple_choice=mcr,
        num_queries=first.num_queries,
        num_docs=first.num_docs,
        num_questions=len(items or ()),
        encode_seconds=sum(r.encode_seconds for r in retrieval.values()) + sum(m.encode_seconds for m in mcr.values()),
        seconds=time.perf_counter() - start,
        notes=notes,
    )


def _modes(instruction: InstructionMode) -> tuple[bool, ...]:
    if instruction == "both":
        return (False, True)
    if isinstance(instruction, bool):
        return (instruction,)
    raise ValueError(f"instruction must be True, False or 'both', got {instruction!r}")


def _choices(
    folder: Path, split: str, data: BeirDataset, required: bool | None
) -> tuple[list[MultipleChoiceItem] | None, list[str]]:
    if required is False:
        return None, ["multiple-choice setting skipped (multiple_choice=False)"]
    items = load_multiple_choice(folder, split, data=data)
    if items is not None:
        return items, []
    missing = f"{folder} has no multiple-choice items (original/ files)"
    if required:
        raise DataError(missing)
    return None, [f"multiple-choice setting skipped: {missing}"]


def _folder_name(folder: Path) -> str:
    name = _meta(folder).get("name")
    return name if isinstance(name, str) and name.strip() else folder.resolve().name
