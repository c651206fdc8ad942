"""The one error type of the data layer: bad input, located.

Every reader in :mod:`contrastkit.data` raises :class:`DataError` for input it
cannot turn into examples: a missing column, an empty text, bad UTF-8, a value
of the wrong type, invalid JSON, a qrels id that is not in the corpus. The
message always names the file, the place in it (line, or row and line for
CSV/TSV, row for Parquet) and the problem, so a user can open the file and fix
it::

    data/train.jsonl, line 17: missing column 'positive' (present: anchor, negative)

The place is also kept as attributes (``path``, ``line``, ``row``,
``problem``) for programs that want to report it differently.
"""

from __future__ import annotations

from pathlib import Path

from contrastkit.errors import ContrastkitError


class DataError(ContrastkitError, ValueError):
    """Input data that cannot be read as examples; the message says where and why.

    Args:
        problem: what is wrong, e.g. ``"empty text in column 'anchor'"``.
        path: the file, or None when the problem is not tied to one file.
        line: 1-based physical line number in the file, when known.
        row: 1-based data row number (header excluded) for tabular files, when known.
    """

    def __init__(
        self,
        problem: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        row: int | None = None,
    ) -> None:
        self.problem = problem
        self.path = None if path is None else str(path)
        self.line = line
        self.row = row
        super().__init__(_format(problem, self.path, line, row))


def _format(problem: str, path: str | None, line: int | None, row: int | None) -> str:
    where = []
    if row is not None:
        where.append(f"row {row}")
    if line is not None:
        where.append(f"line {line}" if row is None else f"(line {line})")
    place = " ".join(where)
    if path is None:
        return f"{place}: {problem}" if place else problem
    return f"{path}, {place}: {problem}" if place else f"{path}: {problem}"
