"""What to analyze, read from a data file or folder: texts, pairs, gold scores, labels.

:func:`load_inputs` accepts the layouts of ``../shared/data`` (and any
file :func:`contrastkit.data.readers.load_examples` reads):

| path | texts | pairs | scores | labels |
|---|---|---|---|---|
| STS folder (``<split>.tsv``: sentence1, sentence2, score) | | (sentence1, sentence2) | score | |
| BEIR folder (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``) | | (query, each relevant document) | | |
| pair / triplet file or folder (anchor, positive) | | (anchor, first positive) | score if every row has one | |
| labelled file (text, label) | text | | | label |
| sentence file (``.txt``, one per line) | line | | | |

A folder is read as BEIR when it has ``corpus.jsonl``; otherwise its
``<split>.{tsv,jsonl,csv,txt}`` file is used (``split`` defaults to
``test``), or its only data file when there is a single one (e.g.
``sentences.txt``). Missing files raise FileNotFoundError naming what was
looked for; malformed content raises the reader's
:class:`~contrastkit.data.errors.DataError` (file, line, problem).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from contrastkit.data.beir import load_beir
from contrastkit.data.readers import load_examples

DATA_SUFFIXES = (".tsv", ".jsonl", ".csv", ".txt")


@dataclass(frozen=True)
class AnalysisInputs:
    """Texts and/or pairs to analyze, with optional gold ``scores`` (per pair) and ``labels`` (per text)."""

    source: str
    texts: list[str] = field(default_factory=list)
    pairs: list[tuple[str, str]] = field(default_factory=list)
    scores: list[float] | None = None
    labels: list[object] | None = None


def data_file(folder: Path, split: str | None) -> Path:
    """The file of ``folder`` to read for ``split`` (see the module docstring)."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in DATA_SUFFIXES)
    for suffix in DATA_SUFFIXES:
        candidate = folder / f"{split or 'test'}{suffix}"
        if candidate.is_file():
            return candidate
    if split is None and len(files) == 1:
        return files[0]
    names = ", ".join(p.name for p in files) or "none"
    raise FileNotFoundError(f"{folder}: no {split or 'test'}.{{tsv,jsonl,csv,txt}} (data files: {names})")


def load_inputs(path: str | Path, *, split: str | None = None) -> AnalysisInputs:
    """Read ``path`` (a file, an STS/pairs folder or a BEIR folder) as :class:`AnalysisInputs`."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such data file or folder: {path}")
    if path.is_dir() and (path / "corpus.jsonl").is_file():
        beir = load_beir(path, split or "test")
        pairs = [(beir.queries[q], beir.corpus[d]) for q, docs in beir.qrels.items() for d, g in docs.items() if g > 0]
        return AnalysisInputs(source=f"{path} ({split or 'test'})", pairs=pairs)
    file = data_file(path, split) if path.is_dir() else path
    examples = load_examples(file)
    source = str(file)
    if all(ex.positives for ex in examples):
        pairs = [(ex.anchor, ex.positives[0]) for ex in examples]
        scores = [float(ex.score) for ex in examples if ex.score is not None]
        return AnalysisInputs(source=source, pairs=pairs, scores=scores if len(scores) == len(pairs) else None)
    labels: list[object] = [ex.label for ex in examples if ex.label is not None]
    has_labels = len(labels) == len(examples)
    return AnalysisInputs(source=source, texts=[ex.anchor for ex in examples], labels=labels if has_labels else None)
