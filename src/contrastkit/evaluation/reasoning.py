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

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F

from contrastkit.data.beir import BeirDataset, load_beir
from contrastkit.data.errors import DataError
from contrastkit.data.readers import json_records
from contrastkit.evaluation.cache import CachedEncoder, EmbeddingCache
from contrastkit.evaluation.retrieval import RetrievalResult, evaluate_retrieval

if TYPE_CHECKING:  # only the type: importing the encoders package loads transformers
    from contrastkit.encoders.base import Encoder

_SIQA = "Given the following context and question, retrieve the correct answer."
# exact strings of the RAR-b code (thesis-methods.md section 3), keyed by the RAR-b dataset key
RARB_INSTRUCTIONS: dict[str, str] = {
    "alphanli": "Given the following start and end of a story, retrieve a possible reason that leads to the end.",
    "hellaswag": "Given the following unfinished context, retrieve the most plausible ending to finish it.",
    "winogrande": (
        "Given the following sentence, retrieve an appropriate answer to fill in the missing underscored part."
    ),
    "piqa": "Given the following goal, retrieve a possible solution.",
    "siqa": _SIQA,
    "arc-challenge": "Retrieve the answer to the question.",
    "quail": _SIQA,
    "spartqa": "Given the following spatial reasoning question, retrieve the right answer.",
    "tempreason-l1": "Given the following question about time, retrieve the correct answer.",
    **{f"tempreason-l{n}-pure": "Given the following question, retrieve the correct answer." for n in (2, 3)},
    **{f"tempreason-l{n}-fact": "Given the following question and facts, retrieve the correct answer." for n in (2, 3)},
    **{
        f"tempreason-l{n}-context": "Given the following question, facts and contexts, retrieve the correct answer."
        for n in (2, 3)
    },
    "math-pooled": "Retrieve the answer for the following math problem.",
    "humanevalpack-mbpp-pooled": "Retrieve the answer for the following coding problem.",
    "c-sts": "Retrieve an aspect and a sentence which are similar to the following sentence.",
}
# other spellings (MTEB task names, RAR-b folder/file names) -> RAR-b key
_ALIASES = {
    "physicaliqa": "piqa", "socialiqa": "siqa", "arcchallenge": "arc-challenge", "rarbmath": "math-pooled",
    "rarbcode": "humanevalpack-mbpp-pooled", "csts": "c-sts", "tr1": "tempreason-l1", "tempreasonl1": "tempreason-l1",
    **{f"tempreasonl{n}{kind}": f"tempreason-l{n}-{kind}" for n in (2, 3) for kind in ("pure", "fact", "context")},
    **{f"tr{n}-{kind}": f"tempreason-l{n}-{kind}" for n in (2, 3) for kind in ("pure", "fact", "context")},
}  # fmt: skip

InstructionMode = bool | Literal["both"]
MODE_SUFFIX = {False: "", True: "/instruction"}


def instruction_for(task: str) -> str:
    """The RAR-b instruction of ``task``: a RAR-b key, an MTEB task name or a RAR-b folder name, any case.

    Raises:
        KeyError: an unknown task (the message lists the known keys).
    """
    key = task.strip().lower().replace("_", "-")
    key = _ALIASES.get(key, _ALIASES.get(key.replace("-", ""), key))
    if key not in RARB_INSTRUCTIONS:
        raise KeyError(f"no RAR-b instruction for task {task!r}; known: {', '.join(sorted(RARB_INSTRUCTIONS))}")
    return RARB_INSTRUCTIONS[key]


def with_instruction(instruction: str | None, query: str) -> str:
    """The RAR-b query text: ``(instruction + " " + query).strip()``, or the query itself without instruction."""
    return query if instruction is None else f"{instruction} {query}".strip()


@dataclass(frozen=True)
class MultipleChoiceItem:
    """One multiple-choice question: its id, text, own candidates (in order) and the gold candidate's index."""

    qid: str
    query: str
    candidates: tuple[str, ...]
    answer: int

    def __post_init__(self) -> None:
        if len(self.candidates) < 2:
            raise ValueError(f"question {self.qid!r}: a multiple-choice question needs >= 2 candidates")
        if not 0 <= self.answer < len(self.candidates):
            raise ValueError(f"question {self.qid!r}: answer {self.answer} is not a candidate index")


@dataclass(frozen=True)
class MultipleChoiceResult:
    """What :func:`evaluate_multiple_choice` measured.

    Attributes:
        accuracy: fraction of questions whose predicted candidate is the gold one.
        predictions: question id -> predicted candidate index.
        scores: question id -> cosine of each of its candidates, in candidate order.
        num_questions: questions evaluated.
        encode_seconds: time spent encoding questions and candidates.
    """

    accuracy: float
    predictions: dict[str, int]
    scores: dict[str, list[float]]
    num_questions: int
    encode_seconds: float = 0.0


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


def evaluate_multiple_choice(
    encoder: Encoder | CachedEncoder,
    items: Sequence[MultipleChoiceItem],
    *,
    instruction: str | None = None,
    batch_size: int = 64,
    query_prompt_name: str | None = None,
    doc_prompt_name: str | None = None,
) -> MultipleChoiceResult:
    """Accuracy of ``argmax_c cos(q, c)`` over each question's own candidates (ties: the first candidate).

    The query text is :func:`with_instruction` ``(instruction, item.query)``;
    candidates are encoded as given (each distinct text once).

    Raises:
        ValueError: no items, or non-finite embeddings.
    """
    if not items:
        raise ValueError("no multiple-choice question to evaluate")
    texts = list(dict.fromkeys(c for item in items for c in item.candidates))
    row = {t: i for i, t in enumerate(texts)}
    start = time.perf_counter()
    q_emb = encoder.encode(
        [with_instruction(instruction, item.query) for item in items], batch_size=batch_size,
        prompt_name=query_prompt_name,
    )  # fmt: skip
    c_emb = encoder.encode(texts, batch_size=batch_size, prompt_name=doc_prompt_name)
    encode_seconds = time.perf_counter() - start
    if not (torch.isfinite(q_emb).all() and torch.isfinite(c_emb).all()):
        raise ValueError("the encoder returned non-finite embeddings")
    q_emb, c_emb = F.normalize(q_emb.float(), dim=-1), F.normalize(c_emb.float(), dim=-1)
    predictions, scores, correct = {}, {}, 0
    for q, item in zip(q_emb, items, strict=True):
        cos = c_emb[[row[c] for c in item.candidates]] @ q
        best = int(torch.argmax(cos))  # the first maximal index
        predictions[item.qid], scores[item.qid] = best, cos.tolist()
        correct += best == item.answer
    return MultipleChoiceResult(correct / len(items), predictions, scores, len(items), encode_seconds)


def load_multiple_choice(
    folder: str | Path, split: str = "test", *, data: BeirDataset | None = None
) -> list[MultipleChoiceItem] | None:
    """The multiple-choice items of a RAR-b folder (module docstring: formats), or None if it has none.

    With PIQA's original files, only the questions judged in ``qrels/<split>.tsv``
    are kept (``data``, when given, is that split already loaded).

    Raises:
        DataError: a malformed or inconsistent file (file, line, problem).
    """
    folder = Path(folder)
    originals = _original_files(folder)
    if originals is None:
        return None
    items = _read_piqa(folder, *originals, data if data is not None else load_beir(folder, split))
    return items or None


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
        cache: embedding cache (default: the process-wide one,
            :func:`~contrastkit.evaluation.cache.default_cache`; a
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
    retrieval, mcr, metrics = {}, {}, {}
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
        encode_seconds=sum(r.encode_seconds for r in [*retrieval.values(), *mcr.values()]),
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


def _meta(folder: Path) -> dict:
    """``meta.json`` of a data folder ({} when absent or not a JSON object)."""
    try:
        meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _folder_name(folder: Path) -> str:
    name = _meta(folder).get("name")
    return name if isinstance(name, str) and name.strip() else folder.resolve().name


def _original_files(folder: Path) -> tuple[Path, Path] | None:
    """(questions .jsonl, labels .lst) of ``original/``: named in meta.json, else the only such pair."""
    listed = _meta(folder).get("original_files")
    names = [n for n in listed if isinstance(n, str)] if isinstance(listed, list) else []
    paths = [folder / n for n in names] or sorted((folder / "original").glob("*"))
    questions = [p for p in paths if p.suffix == ".jsonl" and p.is_file()]
    labels = [p for p in paths if p.suffix == ".lst" and p.is_file()]
    return (questions[0], labels[0]) if len(questions) == 1 and len(labels) == 1 else None


def _read_piqa(folder: Path, questions: Path, labels_path: Path, data: BeirDataset) -> list[MultipleChoiceItem]:
    """PIQA's original files, aligned line by line with queries.jsonl and checked against the qrels."""
    query_rows = [(r.get("_id"), r.get("text")) for _, r in json_records(folder / "queries.jsonl")]
    labels = [line.strip() for line in labels_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    items, i = [], -1
    for i, (number, record) in enumerate(json_records(questions)):
        if i >= min(len(query_rows), len(labels)):
            raise DataError("more questions than queries.jsonl rows or labels", path=questions, line=number)
        qid, text = str(query_rows[i][0]), query_rows[i][1]
        sols = sorted((k for k in record if k.startswith("sol") and k[3:].isdigit()), key=lambda k: int(k[3:]))
        goal = record.get("goal")
        if goal != text or len(sols) < 2 or not labels[i].isdigit():
            raise DataError(f"question does not match query {qid!r} (goal, sol1.., label)", path=questions, line=number)
        try:
            item = MultipleChoiceItem(qid, str(goal), tuple(str(record[k]).strip() for k in sols), int(labels[i]))
        except ValueError as e:
            raise DataError(str(e), path=labels_path, line=i + 1) from None
        gold = [d for d, g in data.qrels.get(qid, {}).items() if g > 0]
        if gold and data.corpus.get(gold[0], "").strip() != item.candidates[item.answer]:
            raise DataError(f"gold candidate of {qid!r} is not qrels document {gold[0]!r}", path=questions, line=number)
        if qid in data.qrels:
            items.append(item)
    if i + 1 != len(query_rows) or i + 1 != len(labels):
        raise DataError(f"{i + 1} questions, {len(query_rows)} queries, {len(labels)} labels", path=questions)
    return items
