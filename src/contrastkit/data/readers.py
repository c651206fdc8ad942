"""Read training examples from JSONL, CSV/TSV, plain text and Parquet files, streaming.

:func:`read_examples` is a generator: it holds one line (one Parquet record
batch) at a time, so the first example of a file of any size arrives at once
and memory stays bounded. :func:`load_examples` reads whole files into a list,
so every :class:`~contrastkit.data.errors.DataError` surfaces before training
starts or anything is written.

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
``negative_2``, ...). In JSONL and Parquet a positive/negative/labels value may
itself be a list (several positives or negatives per example).

The example ``kind`` fixes the roles every record must have: ``sentence``
(anchor), ``pair`` (+ positive), ``triplet`` (+ positive, negative),
``graded`` (+ positive, score), ``labelled`` (+ label), ``multilabel``
(+ labels); ``group`` is read whenever its column exists. Without ``kind``,
the roles found in the header (CSV/TSV, Parquet) or the first record (JSONL)
must match exactly one kind, and every later record must have them too.

Formats, from the file name unless ``format`` is given (a ``.gz`` suffix is
read through gzip): ``.jsonl``/``.ndjson`` one JSON object per line; ``.csv``
RFC 4180 with a header; ``.tsv`` tab-separated with a header and *no quoting*
(each line split on tabs, the usual TSV of STS and BEIR files; pass
``quoting=True`` for quoted TSV); ``.txt`` one anchor text per line;
``.parquet`` when pyarrow is installed. Blank lines are skipped. Every text
must be a non-empty string; a score a finite number; a label an int or string.

Example::

    >>> for ex in read_examples("train.jsonl", columns={"anchor": "question"}):  # doctest: +SKIP
    ...     print(ex.anchor, ex.positives)
"""

from __future__ import annotations

import csv
import gzip
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal, get_args

from contrastkit.data.errors import DataError
from contrastkit.data.examples import Example

Format = Literal["jsonl", "csv", "tsv", "text", "parquet"]
Kind = Literal["sentence", "pair", "triplet", "graded", "labelled", "multilabel"]

KIND_ROLES: dict[str, tuple[str, ...]] = {
    "sentence": ("anchor",),
    "pair": ("anchor", "positive"),
    "triplet": ("anchor", "positive", "negative"),
    "graded": ("anchor", "positive", "score"),
    "labelled": ("anchor", "label"),
    "multilabel": ("anchor", "labels"),
}
DEFAULT_COLUMNS: dict[str, tuple[str, ...]] = {
    "anchor": ("anchor", "sentence1", "query", "text", "sentence"),
    "positive": ("positive", "positives", "sentence2", "pos"),
    "negative": ("negative", "negatives", "hard_negative", "neg"),
    "score": ("score",),
    "label": ("label",),
    "labels": ("labels",),
    "group": ("group",),
}
_SUFFIXES: dict[str, Format] = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "tsv"}
_SUFFIXES |= {".txt": "text", ".parquet": "parquet"}
_LISTS = ("positive", "negative", "labels")


@dataclass(frozen=True)
class _Plan:
    """Which source columns feed which role; resolved once per file."""

    kind: str
    columns: dict[str, tuple[str, ...]]


def read_examples(
    path: str | Path,
    *,
    format: Format | None = None,
    columns: Mapping[str, str | Sequence[str]] | None = None,
    kind: Kind | None = None,
    quoting: bool | None = None,
) -> Iterator[Example]:
    """Stream the examples of one file; see the module docstring for formats, columns and kinds.

    Arguments are checked now (ValueError, FileNotFoundError); problems in the
    file's content raise :class:`DataError` (file, line/row, problem) when the
    iteration reaches them. ``quoting`` applies to CSV/TSV only (default: on
    for CSV, off for TSV). Each example's ``source`` is ``str(path)``.
    """
    path = Path(path)
    fmt = _detect_format(path, format)
    mapping = _check_columns(columns, kind)
    if fmt == "text" and (mapping or kind not in (None, "sentence")):
        raise ValueError("format 'text' yields anchor-only examples: columns and kind do not apply")
    if not path.is_file():
        raise FileNotFoundError(f"no such data file: {path}")
    if fmt == "jsonl":
        return _read_jsonl(path, mapping, kind)
    if fmt == "text":
        return _read_text(path)
    if fmt == "parquet":
        return _read_parquet(path, mapping, kind)
    delimiter = "," if fmt == "csv" else "\t"
    quote = fmt == "csv" if quoting is None else quoting
    return _read_csv(path, mapping, kind, delimiter, quote)


def load_examples(
    paths: str | Path | Sequence[str | Path],
    *,
    format: Format | None = None,
    columns: Mapping[str, str | Sequence[str]] | None = None,
    kind: Kind | None = None,
    quoting: bool | None = None,
) -> list[Example]:
    """All examples of one file or several (concatenated in order), fully validated."""
    many = [paths] if isinstance(paths, (str, Path)) else list(paths)
    out: list[Example] = []
    for p in many:
        out.extend(read_examples(p, format=format, columns=columns, kind=kind, quoting=quoting))
    return out


# ---------------------------------------------------------------- arguments
def _detect_format(path: Path, format: str | None) -> str:
    if format is not None:
        if format not in get_args(Format):
            raise ValueError(f"unknown format {format!r}; expected one of {', '.join(get_args(Format))}")
        return format
    suffixes = [s.lower() for s in path.suffixes]
    suffix = suffixes[-2] if suffixes[-1:] == [".gz"] and len(suffixes) > 1 else (suffixes or [""])[-1]
    if suffix not in _SUFFIXES:
        known = ", ".join(sorted(_SUFFIXES))
        raise ValueError(f"{path}: cannot tell the format from suffix {suffix!r} (known: {known}); pass format=")
    return _SUFFIXES[suffix]


def _check_columns(columns: Mapping[str, str | Sequence[str]] | None, kind: str | None) -> dict[str, tuple[str, ...]]:
    if kind is not None and kind not in KIND_ROLES:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KIND_ROLES)}")
    mapping: dict[str, tuple[str, ...]] = {}
    for role, names in (columns or {}).items():
        if role not in DEFAULT_COLUMNS:
            raise ValueError(f"columns: unknown role {role!r}; expected one of {', '.join(DEFAULT_COLUMNS)}")
        names = (names,) if isinstance(names, str) else tuple(names)
        if not names or (len(names) > 1 and role not in _LISTS):
            raise ValueError(f"columns[{role!r}]: expected one column name" + (" or a list" * (role in _LISTS)))
        if kind is not None and role not in (*KIND_ROLES[kind], "group"):
            raise ValueError(f"columns maps role {role!r}, which kind {kind!r} does not use")
        mapping[role] = names
    return mapping


def _resolve(available: Sequence[str], mapping: dict[str, tuple[str, ...]], kind: str | None) -> _Plan:
    """The plan for a file whose columns are ``available``; raises DataError without a location."""
    present = set(available)
    shown = ", ".join(available) or "none"
    found: dict[str, tuple[str, ...]] = {}
    for role, names in mapping.items():
        missing = [n for n in names if n not in present]
        if missing:
            raise DataError(f"missing column {missing[0]!r} (mapped to role {role!r}; present: {shown})")
        found[role] = names
    used = {n for names in found.values() for n in names}
    for role, defaults in DEFAULT_COLUMNS.items():
        hit = next((n for n in defaults if n in present and n not in used), None)
        if role not in found and hit is not None:
            found[role] = (hit,)
    if kind is None:
        roles = set(found) - {"group"}
        kind = next((k for k, r in KIND_ROLES.items() if set(r) == roles), None)
        if kind is None:
            raise DataError(f"cannot infer the example kind from columns ({shown}); pass kind= or columns=")
    for role in KIND_ROLES[kind]:
        if role not in found:
            wanted = " or ".join(repr(n) for n in DEFAULT_COLUMNS[role])
            raise DataError(f"missing column {wanted} for role {role!r} of kind {kind!r} (present: {shown})")
    keep = (*KIND_ROLES[kind], "group")
    return _Plan(kind, {r: found[r] for r in keep if r in found})


# ---------------------------------------------------------------- values
def _text(value: Any, column: str) -> str:
    if not isinstance(value, str):
        raise DataError(f"wrong type in column {column!r}: expected a string, got {_type(value)}")
    if not value.strip():
        raise DataError(f"empty text in column {column!r}")
    return value


def _texts(value: Any, column: str) -> list[str]:
    if isinstance(value, list):
        return [_text(v, f"{column}[{i}]") for i, v in enumerate(value)]
    return [_text(value, column)]


def _score(value: Any, column: str, typed: bool) -> float:
    if not typed and isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise DataError(f"wrong type in column {column!r}: expected a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(f"wrong type in column {column!r}: expected a number, got {_type(value)}")
    if not math.isfinite(value):
        raise DataError(f"wrong value in column {column!r}: score {value!r} is not finite")
    return float(value)


def _label(value: Any, column: str, typed: bool) -> int | str:
    if not typed and isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise DataError(f"wrong type in column {column!r}: expected an int or a string label, got {_type(value)}")
    if isinstance(value, str) and not value.strip():
        raise DataError(f"empty label in column {column!r}")
    return value


def _type(value: Any) -> str:
    return {type(None): "null", dict: "an object", list: "a list", bool: "a boolean"}.get(
        type(value), f"{type(value).__name__} {value!r}"[:60]
    )


def _example(record: Mapping[str, Any], plan: _Plan, typed: bool, source: str) -> Example:
    """The example of one record (column -> value); raises DataError without a location."""
    fields: dict[str, Any] = {}
    for role, names in plan.columns.items():
        for name in names:
            if name not in record:
                raise DataError(f"missing column {name!r} (role {role!r})")
        values = [record[n] for n in names]
        if role == "anchor":
            fields["anchor"] = _text(values[0], names[0])
        elif role in ("positive", "negative"):
            texts = [t for n, v in zip(names, values, strict=True) for t in _texts(v, n)]
            if role == "positive" and not texts:
                raise DataError(f"no positive text in column {names[0]!r} (empty list)")
            fields[role + "s"] = tuple(texts)
        elif role == "score":
            fields["score"] = _score(values[0], names[0], typed)
        elif role == "label":
            fields["label"] = _label(values[0], names[0], typed)
        elif role == "labels":
            labels = [
                _label(x, n, typed)
                for n, v in zip(names, values, strict=True)
                for x in (v if isinstance(v, list) else [v])
            ]
            if not labels:
                raise DataError(f"no label in column {names[0]!r} (empty list)")
            fields["labels"] = tuple(labels)
        else:
            group = _label(values[0], names[0], True)
            fields["group"] = str(group)
    return Example(**fields, source=source)


# ---------------------------------------------------------------- formats
def _open(path: Path) -> BinaryIO:
    return gzip.open(path, "rb") if path.suffix.lower() == ".gz" else path.open("rb")  # type: ignore[return-value]


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, decoded line without its end) for every line, BOM stripped, bad UTF-8 located."""
    with _open(path) as f:
        try:
            for number, raw in enumerate(f, 1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise DataError(f"bad UTF-8 at byte {e.start} of the line", path=path, line=number) from None
                if number == 1:
                    line = line.removeprefix("\ufeff")
                yield number, line.rstrip("\r\n")
        except (gzip.BadGzipFile, EOFError) as e:
            raise DataError(f"not a readable gzip file ({e})", path=path) from None


def json_records(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(1-based line number, object) for every non-blank line of a JSONL file, streaming.

    Raises :class:`DataError` (file, line, problem) for bad UTF-8, invalid JSON
    or a line that is not a JSON object.
    """
    path = Path(path)
    for number, line in _lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"invalid JSON: {e.msg} at column {e.colno}", path=path, line=number) from None
        if not isinstance(record, dict):
            raise DataError(f"wrong type: expected a JSON object, got {_type(record)}", path=path, line=number)
        yield number, record


def _read_jsonl(path: Path, mapping: dict[str, tuple[str, ...]], kind: str | None) -> Iterator[Example]:
    plan, source = None, str(path)
    for number, record in json_records(path):
        try:
            plan = plan or _resolve(list(record), mapping, kind)
            yield _example(record, plan, True, source)
        except DataError as e:
            raise DataError(e.problem, path=path, line=number) from None


def _read_text(path: Path) -> Iterator[Example]:
    source = str(path)
    for _, line in _lines(path):
        if line.strip():
            yield Example(anchor=line, source=source)


def _read_csv(
    path: Path, mapping: dict[str, tuple[str, ...]], kind: str | None, delimiter: str, quote: bool
) -> Iterator[Example]:
    numbered = _lines(path)
    where = {"line": 0}

    def feed() -> Iterator[str]:
        for number, line in numbered:
            where["line"] = number
            yield line + "\n"

    reader = csv.reader(
        feed(), delimiter=delimiter, quoting=csv.QUOTE_MINIMAL if quote else csv.QUOTE_NONE, strict=True
    )
    header = _csv_next(reader, path)
    if header is None:
        raise DataError("empty file: no header line", path=path, line=1)
    try:
        plan = _resolve(header, mapping, kind)
    except DataError as e:
        raise DataError(e.problem + " in the header", path=path, line=1) from None
    row, start, source = 0, where["line"] + 1, str(path)
    while (fields := _csv_next(reader, path, row + 1, start)) is not None:
        if fields:
            row += 1
            try:
                if len(fields) != len(header):
                    raise DataError(f"wrong number of fields: {len(fields)}, the header has {len(header)}")
                yield _example(dict(zip(header, fields, strict=True)), plan, False, source)
            except DataError as e:
                raise DataError(e.problem, path=path, row=row, line=start) from None
        start = where["line"] + 1


def _csv_next(reader: Any, path: Path, row: int | None = None, line: int = 1) -> list[str] | None:
    """The next record of a csv reader (None at the end); csv.Error becomes a located DataError."""
    try:
        return next(reader, None)
    except csv.Error as e:
        raise DataError(f"malformed record: {e}", path=path, row=row, line=line) from None


def _read_parquet(path: Path, mapping: dict[str, tuple[str, ...]], kind: str | None) -> Iterator[Example]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError(f"reading Parquet ({path}) needs pyarrow: pip install pyarrow") from None
    parquet = pq.ParquetFile(path)
    try:
        plan = _resolve(parquet.schema_arrow.names, mapping, kind)
    except DataError as e:
        raise DataError(e.problem + " in the schema", path=path) from None
    row, source = 0, str(path)
    needed = sorted({n for names in plan.columns.values() for n in names})
    for batch in parquet.iter_batches(batch_size=1024, columns=needed):
        for record in batch.to_pylist():
            row += 1
            try:
                yield _example(record, plan, True, source)
            except DataError as e:
                raise DataError(e.problem, path=path, row=row) from None
