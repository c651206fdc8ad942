"""Read training examples from JSONL, CSV/TSV, plain text, Parquet and Hugging Face datasets, streaming.

:func:`read_examples` is a generator: it holds one line (one Parquet row
group, one chunk of a Hugging Face dataset) at a time, so the first example
of a source of any size arrives at once and memory stays bounded.
:func:`load_examples` reads whole sources into a list, so every
:class:`~contrastkit.data.errors.DataError` surfaces before training starts
or anything is written.

Columns map to the roles of :class:`~contrastkit.data.examples.Example`:

| role | Example field | default column names (first present wins) |
|---|---|---|
| ``anchor`` | ``anchor`` | anchor, sentence1, query, text, sentence |
| ``positive`` | ``positives`` | positive, positives, sentence2, pos |
| ``negative`` | ``negatives`` | negative, negatives, hard_negative, neg |
| ``score`` | ``score`` | score |
| ``label`` | ``label`` | label |
| ``labels`` | ``labels`` | labels |
| ``group`` | ``group`` | group |

``columns`` overrides the defaults per role, e.g. ``{"anchor": "question",
"positive": "answer", "negative": "hard_negative"}``; ``positive``,
``negative`` and ``labels`` may map to a list of columns (``negative_1``,
``negative_2``, ...). In JSONL, Parquet and Hugging Face datasets a
positive/negative/labels value may itself be a list (several positives or
negatives per example).

The example ``kind`` fixes the roles every record must have: ``sentence``
(anchor), ``pair`` (+ positive), ``triplet`` (+ positive, negative),
``graded`` (+ positive, score), ``labelled`` (+ label), ``multilabel``
(+ labels), ``image_text`` (anchor = an image file path that must exist,
+ positive text; see :mod:`contrastkit.data.records`); ``group`` is read
whenever its column exists. Without ``kind``, the roles found in the header
(CSV/TSV, Parquet, a dataset's features) or the first record (JSONL) must
match exactly one kind (never ``image_text``), and every later record must
have them too.

Formats, from the path unless ``format`` is given (a ``.gz`` suffix is read
through gzip): ``.jsonl``/``.ndjson`` one JSON object per line; ``.csv``
RFC 4180 with a header; ``.tsv`` tab-separated with a header and *no quoting*
(each line split on tabs, the usual TSV of STS and BEIR files; pass
``quoting=True`` for quoted TSV); ``.txt`` one anchor text per line;
``.parquet`` (pyarrow); ``hf``: a folder or an ``.arrow`` file, read with
Hugging Face ``datasets`` (:mod:`contrastkit.data.hf`; ``format="hf"`` also
reads local data files and hub names through ``load_dataset``, and
``split`` picks the split). Blank lines are skipped. Every text must be a
non-empty string; a score a finite number; a label an int or string.

Example::

    >>> for ex in read_examples("train.jsonl", columns={"anchor": "question"}):  # doctest: +SKIP
    ...     print(ex.anchor, ex.positives)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Literal, get_args

from contrastkit.data.examples import Example
from contrastkit.data.formats import json_records, read_csv, read_jsonl, read_parquet, read_text
from contrastkit.data.hf import read_hf
from contrastkit.data.records import DEFAULT_COLUMNS, KIND_ROLES, check_columns

__all__ = ["DEFAULT_COLUMNS", "KIND_ROLES", "Format", "Kind", "json_records", "load_examples", "read_examples"]

Format = Literal["jsonl", "csv", "tsv", "text", "parquet", "hf"]
FORMATS: tuple[Format, ...] = get_args(Format)
Kind = Literal["sentence", "pair", "triplet", "graded", "labelled", "multilabel", "image_text"]

_SUFFIXES: dict[str, Format] = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "tsv"}
_SUFFIXES |= {".txt": "text", ".parquet": "parquet", ".arrow": "hf"}


def read_examples(
    path: str | Path,
    *,
    format: Format | None = None,
    columns: Mapping[str, str | Sequence[str]] | None = None,
    kind: Kind | None = None,
    quoting: bool | None = None,
    split: str | None = None,
) -> Iterator[Example]:
    """Stream the examples of one source; see the module docstring for formats, columns and kinds.

    Arguments are checked now (ValueError, FileNotFoundError); problems in the
    content raise :class:`DataError` (file, line/row, problem) when the
    iteration reaches them. ``quoting`` applies to CSV/TSV only (default: on
    for CSV, off for TSV), ``split`` to ``hf`` only (default ``train``). Each
    example's ``source`` is ``str(path)``. With ``format="hf"`` a path that
    does not exist is taken as a hub dataset name.
    """
    path = Path(path)
    fmt = _detect_format(path, format)
    mapping = check_columns(columns, kind)
    if fmt == "text" and (mapping or kind not in (None, "sentence")):
        raise ValueError("format 'text' yields anchor-only examples: columns and kind do not apply")
    if split is not None and fmt != "hf":
        raise ValueError(f"split applies to Hugging Face datasets (format 'hf') only, not to format {fmt!r}")
    if fmt == "hf":
        return read_hf(str(path), mapping, kind, split)
    if not path.is_file():
        raise FileNotFoundError(f"no such data file: {path}")
    if fmt == "jsonl":
        return read_jsonl(path, mapping, kind)
    if fmt == "text":
        return read_text(path)
    if fmt == "parquet":
        return read_parquet(path, mapping, kind)
    delimiter = "," if fmt == "csv" else "\t"
    quote = fmt == "csv" if quoting is None else quoting
    return read_csv(path, mapping, kind, delimiter, quote)


def load_examples(
    paths: str | Path | Sequence[str | Path],
    *,
    format: Format | None = None,
    columns: Mapping[str, str | Sequence[str]] | None = None,
    kind: Kind | None = None,
    quoting: bool | None = None,
    split: str | None = None,
) -> list[Example]:
    """All examples of one source or several (concatenated in order), fully validated."""
    many = [paths] if isinstance(paths, (str, Path)) else list(paths)
    out: list[Example] = []
    for p in many:
        out.extend(read_examples(p, format=format, columns=columns, kind=kind, quoting=quoting, split=split))
    return out


def _detect_format(path: Path, format: str | None) -> Format:
    """``format`` checked, or the format of ``path``: a folder is a Hugging Face dataset, else the suffix decides."""
    if format is not None:
        for choice in FORMATS:
            if format == choice:
                return choice
        raise ValueError(f"unknown format {format!r}; expected one of {', '.join(FORMATS)}")
    if path.is_dir():
        return "hf"
    suffixes = [s.lower() for s in path.suffixes]
    suffix = suffixes[-2] if suffixes[-1:] == [".gz"] and len(suffixes) > 1 else (suffixes or [""])[-1]
    if suffix not in _SUFFIXES:
        known = ", ".join(sorted(_SUFFIXES))
        raise ValueError(f"{path}: cannot tell the format from suffix {suffix!r} (known: {known}); pass format=")
    return _SUFFIXES[suffix]
