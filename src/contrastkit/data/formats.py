"""The file formats of :func:`contrastkit.data.readers.read_examples`: JSONL, CSV/TSV, plain text and Parquet.

Each reader is a generator that holds one line (JSONL, CSV/TSV, text) or one
Parquet row group at a time, so memory stays bounded for files of any size,
and adds the location to every :class:`~contrastkit.data.errors.DataError`:
the line (JSONL, text), the data row and its first line (CSV/TSV), or the
1-based row index (Parquet). A ``.gz`` suffix is read through gzip.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from contrastkit.data.errors import DataError
from contrastkit.data.examples import Example
from contrastkit.data.records import clip, describe, integer, resolve, to_example

Columns = dict[str, tuple[str, ...]]


def _open(path: Path) -> io.BufferedIOBase:
    return gzip.open(path, "rb") if path.suffix.lower() == ".gz" else path.open("rb")


def text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, decoded line without its end) for every line, BOM stripped, bad UTF-8 located.

    A file that cannot be read, or a ``.gz`` file whose compressed stream is
    damaged (bad header, CRC, truncation, a corrupt deflate block), is a
    DataError naming the line where reading stopped.
    """
    number = 0
    try:
        with _open(path) as f:
            for number, raw in enumerate(f, 1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise DataError(f"bad UTF-8 at byte {e.start} of the line", path=path, line=number) from None
                if number == 1:
                    line = line.removeprefix("\ufeff")
                yield number, line.rstrip("\r\n")
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        what = "gzip file" if path.suffix.lower() == ".gz" else "file"
        raise DataError(f"not a readable {what} ({type(e).__name__}: {e})", path=path, line=number + 1) from None


def is_file(path: Path) -> bool:
    """``path.is_file()``, except that a name the file system refuses (e.g. too long) is not a file either."""
    try:
        return path.is_file()
    except OSError:
        return False


def parse_json(text: str) -> Any:
    """The JSON value of ``text``; every way it can fail is a :class:`DataError` without a location.

    Besides syntax errors (reported with their column), that is nesting too
    deep for the parser and integers longer than Python reads from text
    (:data:`~contrastkit.data.records.MAX_DIGITS` digits).
    """
    try:
        return json.loads(text, parse_int=_json_int)
    except json.JSONDecodeError as e:
        raise DataError(f"invalid JSON: {e.msg} at column {e.colno}") from None
    except RecursionError:
        raise DataError("invalid JSON: arrays or objects nested too deeply to read") from None


def _json_int(text: str) -> int:
    number = integer(text)
    if number is None:  # unreachable for the JSON grammar; kept so a bad token can never pass silently
        raise DataError(f"invalid JSON number {clip(text)!r}")
    return number


def json_records(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(1-based line number, object) for every non-blank line of a JSONL file, streaming.

    Raises :class:`DataError` (file, line, problem) for an unreadable file,
    bad UTF-8, invalid JSON (:func:`parse_json`) or a line that is not a JSON object.
    """
    path = Path(path)
    for number, line in text_lines(path):
        if not line.strip():
            continue
        try:
            record = parse_json(line)
        except DataError as e:
            raise DataError(e.problem, path=path, line=number) from None
        if not isinstance(record, dict):
            raise DataError(f"wrong type: expected a JSON object, got {describe(record)}", path=path, line=number)
        yield number, record


def read_jsonl(path: Path, mapping: Columns, kind: str | None) -> Iterator[Example]:
    """Examples of a JSONL file; the plan comes from the first record's keys."""
    plan, source = None, str(path)
    for number, record in json_records(path):
        try:
            plan = plan or resolve(list(record), mapping, kind, path.parent)
            yield to_example(record, plan, True, source)
        except DataError as e:
            raise DataError(e.problem, path=path, line=number) from None


def read_text(path: Path) -> Iterator[Example]:
    """One anchor-only example per non-blank line."""
    source = str(path)
    for _, line in text_lines(path):
        if line.strip():
            yield Example(anchor=line, source=source)


def read_csv(path: Path, mapping: Columns, kind: str | None, delimiter: str, quote: bool) -> Iterator[Example]:
    """Examples of a CSV/TSV file with a header line; errors name the data row and the line it starts on."""
    numbered = text_lines(path)
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
        plan = resolve(header, mapping, kind, path.parent)
    except DataError as e:
        raise DataError(e.problem + " in the header", path=path, line=1) from None
    row, start, source = 0, where["line"] + 1, str(path)
    while (fields := _csv_next(reader, path, row + 1, start)) is not None:
        if fields:
            row += 1
            try:
                if len(fields) != len(header):
                    raise DataError(f"wrong number of fields: {len(fields)}, the header has {len(header)}")
                yield to_example(dict(zip(header, fields, strict=True)), plan, False, source)
            except DataError as e:
                raise DataError(e.problem, path=path, row=row, line=start) from None
        start = where["line"] + 1


def _csv_next(reader: Any, path: Path, row: int | None = None, line: int = 1) -> list[str] | None:
    """The next record of a csv reader (None at the end); csv.Error becomes a located DataError."""
    try:
        return next(reader, None)
    except csv.Error as e:
        raise DataError(f"malformed record: {e}", path=path, row=row, line=line) from None


def read_parquet(path: Path, mapping: Columns, kind: str | None, batch_rows: int = 1024) -> Iterator[Example]:
    """Examples of a Parquet file, one row group in memory at a time (only the mapped columns are read).

    Errors name the 1-based row index across the whole file. A file that is
    not Parquet, or a row group that cannot be decoded, is a DataError.
    """
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError(f"reading Parquet ({path}) needs pyarrow: pip install pyarrow") from None
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError, ValueError) as e:  # ValueError: e.g. a column name that is not UTF-8
        raise DataError(f"not a readable Parquet file ({type(e).__name__}: {e})", path=path) from None
    try:
        plan = resolve(parquet.schema_arrow.names, mapping, kind, path.parent)
    except DataError as e:
        raise DataError(e.problem + " in the schema", path=path) from None
    row, source = 0, str(path)
    for group in range(parquet.num_row_groups):
        try:
            table = parquet.read_row_group(group, columns=plan.needed)
        except (pa.ArrowException, OSError, ValueError) as e:
            raise DataError(f"cannot decode row group {group} (rows {row + 1}-): {e}", path=path) from None
        for batch in table.to_batches(max_chunksize=batch_rows):
            try:
                records = batch.to_pylist()
            except (pa.ArrowException, ValueError, OverflowError) as e:  # e.g. a timestamp beyond Python's datetime
                raise DataError(f"cannot convert rows {row + 1}-{row + len(batch)}: {e}", path=path) from None
            for record in records:
                row += 1
                try:
                    yield to_example(record, plan, True, source)
                except DataError as e:
                    raise DataError(e.problem, path=path, row=row) from None
        del table
