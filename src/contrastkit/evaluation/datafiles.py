"""Finding and reading the split files of evaluation folders (labelled texts, labelled pairs).

An evaluation folder holds one file per split, ``<split>.tsv``, ``<split>.jsonl``
or ``<split>.csv`` (the layout of the public data pack, ``../shared/data``). Files are read with
:func:`contrastkit.data.readers.load_examples`, so every problem is a
:class:`~contrastkit.data.errors.DataError` naming the file, the row and what is
wrong, raised before anything is encoded or written. TSV files are split on
tabs without quoting.

* :func:`read_labelled` (classification, clustering): a text column (``text``,
  ``sentence``, ``sentence1``, ... first present wins), ``label`` and an
  optional ``group``;
* :func:`read_pairs` (pair classification): ``sentence1``, ``sentence2`` and
  ``label`` (0 or 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from contrastkit.data.errors import DataError
from contrastkit.data.readers import load_examples

SUFFIXES = (".tsv", ".jsonl", ".csv")


def split_file(folder: str | Path, split: str, suffixes: tuple[str, ...] = SUFFIXES) -> Path:
    """The one file ``folder/<split><suffix>``; a DataError names what is there when it is missing or ambiguous."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError("no such data folder" if not folder.exists() else "not a folder", path=folder)
    found = [folder / f"{split}{s}" for s in suffixes if (folder / f"{split}{s}").is_file()]
    if len(found) > 1:
        raise DataError(f"split {split!r} is ambiguous: {', '.join(p.name for p in found)}", path=folder)
    if not found:
        splits = sorted({p.name[: -len(s)] for s in suffixes for p in folder.glob(f"*{s}")})
        expected = " or ".join(f"{split}{s}" for s in suffixes)
        raise DataError(f"no {expected} (splits here: {', '.join(splits) or 'none'})", path=folder)
    return found[0]


@dataclass(frozen=True)
class LabelledTexts:
    """Texts with one label each (and an optional group, e.g. a clustering set), read from ``path``."""

    texts: list[str]
    labels: list[int | str]
    groups: list[str | None]
    path: Path

    def __len__(self) -> int:
        return len(self.texts)


def read_labelled(folder: str | Path, split: str) -> LabelledTexts:
    """The labelled texts of ``folder``'s ``split`` file (at least one row)."""
    path = split_file(folder, split)
    examples = load_examples(path, kind="labelled")
    if not examples:
        raise DataError("no data rows", path=path)
    labels: list[int | str] = []
    for row, ex in enumerate(examples, 1):
        if ex.label is None:
            raise DataError("missing label", path=path, row=row)
        labels.append(ex.label)
    if len({type(label) for label in labels}) > 1:  # e.g. "1" read as int next to "pos": compare as strings
        labels = [str(label) for label in labels]
    return LabelledTexts([ex.anchor for ex in examples], labels, [ex.group for ex in examples], path)


@dataclass(frozen=True)
class LabelledPairs:
    """Sentence pairs with a binary label (1 = positive, e.g. paraphrase), read from ``path``."""

    sentences1: list[str]
    sentences2: list[str]
    labels: list[int]
    path: Path

    def __len__(self) -> int:
        return len(self.labels)


def read_pairs(folder: str | Path, split: str) -> LabelledPairs:
    """The labelled pairs of ``folder``'s ``split`` file; labels must be 0 or 1, with at least one 1."""
    path = split_file(folder, split)
    examples = load_examples(path, kind="graded", columns={"score": "label"})
    labels = []
    for row, ex in enumerate(examples, 1):
        if ex.score is None or ex.score not in (0.0, 1.0):
            raise DataError(f"wrong value in column 'label': expected 0 or 1, got {ex.score!r}", path=path, row=row)
        labels.append(int(ex.score))
    if not labels:
        raise DataError("no data rows", path=path)
    if 1 not in labels:
        raise DataError("no positive pair (label 1): average precision is undefined", path=path)
    return LabelledPairs([ex.anchor for ex in examples], [ex.positives[0] for ex in examples], labels, path)
