"""Multiple-choice retrieval (RAR-b's MCR setting): each question ranks only its own candidates.

The prediction is ``argmax cos(q, c)`` over the question's candidates (ties:
the first candidate); the metric is accuracy. Items come from a folder's
original files (:func:`load_multiple_choice`, PIQA's layout; see
:mod:`contrastkit.evaluation.reasoning`) or are built by hand.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from contrastkit.data.beir import BeirDataset, load_beir
from contrastkit.data.errors import DataError
from contrastkit.data.formats import is_file, parse_json, text_lines
from contrastkit.data.readers import json_records
from contrastkit.evaluation.rarb_instructions import with_instruction

if TYPE_CHECKING:
    from contrastkit.encoders.base import Encoder
    from contrastkit.evaluation.cache import CachedEncoder


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


def _meta(folder: Path) -> dict:
    """``meta.json`` of a data folder ({} when absent or not a JSON object)."""
    try:
        meta = parse_json((folder / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):  # DataError and UnicodeDecodeError are ValueErrors
        return {}
    return meta if isinstance(meta, dict) else {}


def _original_files(folder: Path) -> tuple[Path, Path] | None:
    """(questions .jsonl, labels .lst) of ``original/``: named in meta.json, else the only such pair."""
    listed = _meta(folder).get("original_files")
    names = [n for n in listed if isinstance(n, str)] if isinstance(listed, list) else []
    paths = [folder / n for n in names] or sorted((folder / "original").glob("*"))
    questions = [p for p in paths if p.suffix == ".jsonl" and is_file(p)]
    labels = [p for p in paths if p.suffix == ".lst" and is_file(p)]
    return (questions[0], labels[0]) if len(questions) == 1 and len(labels) == 1 else None


def _read_piqa(folder: Path, questions: Path, labels_path: Path, data: BeirDataset) -> list[MultipleChoiceItem]:
    """PIQA's original files, aligned line by line with queries.jsonl and checked against the qrels."""
    query_rows = [(r.get("_id"), r.get("text")) for _, r in json_records(folder / "queries.jsonl")]
    labels = [line.strip() for _, line in text_lines(labels_path) if line.strip()]
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
