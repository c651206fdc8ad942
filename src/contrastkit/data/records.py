"""From one record (column name -> value) to an :class:`~contrastkit.data.examples.Example`: roles, kinds, checks.

Every reader (:mod:`contrastkit.data.formats`, :mod:`contrastkit.data.hf`)
turns its rows into mappings and hands them here. :func:`check_columns`
validates the user's ``columns``/``kind`` arguments once; :func:`resolve`
decides, from the columns a file has, which columns feed which role (a
:class:`Plan`); :func:`to_example` checks one record's values against the
plan. Problems in a record raise :class:`~contrastkit.data.errors.DataError`
*without* a location: the reader adds the file, line or row.

Kinds and their roles:

| kind | roles |
|---|---|
| ``sentence`` | anchor |
| ``pair`` | anchor, positive |
| ``triplet`` | anchor, positive, negative |
| ``graded`` | anchor, positive, score |
| ``labelled`` | anchor, label |
| ``multilabel`` | anchor, labels |
| ``image_text`` | anchor (an image file path), positive (its text); never inferred, ask for it |

For ``image_text`` the anchor's value is a path to an image file: a
relative path is resolved against the plan's ``root`` (the folder of the
data file), the file must exist (else a DataError naming the path), and the
example's ``anchor`` is the resolved path. Default column names for that
kind are ``image``, ``image_path``, ``img``, ``anchor`` (anchor) and
``caption``, ``text``, ``positive``, ``sentence`` (positive).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contrastkit.data.errors import DataError
from contrastkit.data.examples import Example

KIND_ROLES: dict[str, tuple[str, ...]] = {
    "sentence": ("anchor",),
    "pair": ("anchor", "positive"),
    "triplet": ("anchor", "positive", "negative"),
    "graded": ("anchor", "positive", "score"),
    "labelled": ("anchor", "label"),
    "multilabel": ("anchor", "labels"),
    "image_text": ("anchor", "positive"),
}
DEFAULT_COLUMNS: dict[str, tuple[str, ...]] = {
    "anchor": ("anchor", "sentence1", "query", "text", "sentence"),
    "positive": ("positive", "positives", "sentence2", "pos"),
    "negative": ("negative", "negatives", "hard_negative", "neg"),
    "score": ("score",),
    "label": ("label",),
    "labels": ("labels",),
    "group": ("group",),
    "positive_scores": ("positive_scores",),
    "negative_scores": ("negative_scores",),
}
KIND_DEFAULT_COLUMNS: dict[str, dict[str, tuple[str, ...]]] = {
    "image_text": {
        "anchor": ("image", "image_path", "img", "anchor"),
        "positive": ("caption", "text", "positive", "sentence"),
    },
}
INFERRED_KINDS = tuple(k for k in KIND_ROLES if k != "image_text")  # image_text has a pair's roles: asked for only
LIST_ROLES = ("positive", "negative", "labels")
SCORE_ROLES = {"positive_scores": "positive", "negative_scores": "negative"}
"""Teacher scores (distillation): one per positive / negative text, in order; kept by kinds with that role."""
OPTIONAL_ROLES = ("group", *SCORE_ROLES)
MAX_DIGITS = 4300
"""The longest integer read from text: Python's own limit for ``int(str)`` (``sys.get_int_max_str_digits``)."""
_INTEGER = re.compile(r"\s*[+-]?([0-9]+)\s*")


@dataclass(frozen=True)
class Plan:
    """Which source columns feed which role, for one file; ``root`` resolves relative image paths."""

    kind: str
    columns: dict[str, tuple[str, ...]]
    root: Path | None = None

    @property
    def needed(self) -> list[str]:
        """The source columns the plan reads, sorted."""
        return sorted({n for names in self.columns.values() for n in names})


def check_columns(columns: Mapping[str, str | Sequence[str]] | None, kind: str | None) -> dict[str, tuple[str, ...]]:
    """``columns`` as role -> column names; ValueError for an unknown kind or role, or a role the kind does not use."""
    if kind is not None and kind not in KIND_ROLES:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KIND_ROLES)}")
    mapping: dict[str, tuple[str, ...]] = {}
    for role, names in (columns or {}).items():
        if role not in DEFAULT_COLUMNS:
            raise ValueError(f"columns: unknown role {role!r}; expected one of {', '.join(DEFAULT_COLUMNS)}")
        names = (names,) if isinstance(names, str) else tuple(names)
        if not names or (len(names) > 1 and role not in LIST_ROLES):
            raise ValueError(f"columns[{role!r}]: expected one column name" + (" or a list" * (role in LIST_ROLES)))
        if kind is not None and role not in (*KIND_ROLES[kind], *_optional(kind)):
            raise ValueError(f"columns maps role {role!r}, which kind {kind!r} does not use")
        mapping[role] = names
    return mapping


def resolve(
    available: Sequence[str], mapping: dict[str, tuple[str, ...]], kind: str | None, root: Path | None = None
) -> Plan:
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
    defaults = {**DEFAULT_COLUMNS, **KIND_DEFAULT_COLUMNS.get(kind or "", {})}
    for role, names in defaults.items():
        hit = next((n for n in names if n in present and n not in used), None)
        if role not in found and hit is not None:
            found[role] = (hit,)
            used.add(hit)
    if kind is None:
        roles = set(found) - set(OPTIONAL_ROLES)
        kind = next((k for k in INFERRED_KINDS if set(KIND_ROLES[k]) == roles), None)
        if kind is None:
            raise DataError(f"cannot infer the example kind from columns ({shown}); pass kind= or columns=")
    for role in KIND_ROLES[kind]:
        if role not in found:
            wanted = " or ".join(repr(n) for n in defaults[role])
            raise DataError(f"missing column {wanted} for role {role!r} of kind {kind!r} (present: {shown})")
    keep = (*KIND_ROLES[kind], *_optional(kind))
    return Plan(kind, {r: found[r] for r in keep if r in found}, root)


def _optional(kind: str) -> tuple[str, ...]:
    """The roles a kind may have besides its own: ``group``, and the teacher scores of its text lists."""
    return ("group", *(r for r, texts in SCORE_ROLES.items() if texts in KIND_ROLES[kind]))


# ---------------------------------------------------------------- values
def describe(value: Any) -> str:
    """A short description of a value's type for error messages: ``null``, ``a list``, ``int 5``."""
    named = {type(None): "null", dict: "an object", list: "a list", bool: "a boolean"}.get(type(value))
    if named is not None:
        return named
    if isinstance(value, int) and value.bit_length() > 128:  # a huge int's repr is long (refused past 4,300 digits)
        return f"an int of at least {int((value.bit_length() - 1) * math.log10(2)) + 1} digits"
    return clip(f"{type(value).__name__} {value!r}")


def clip(text: str, width: int = 60) -> str:
    """``text`` cut to ``width`` characters (an ellipsis marks the cut), for values quoted in messages."""
    return text if len(text) <= width else text[: width - 3] + "..."


def _text(value: Any, column: str) -> str:
    if not isinstance(value, str):
        raise DataError(f"wrong type in column {column!r}: expected a string, got {describe(value)}")
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
            raise DataError(f"wrong type in column {column!r}: expected a number, got {clip(value)!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(f"wrong type in column {column!r}: expected a number, got {describe(value)}")
    try:
        score = float(value)
    except OverflowError:  # an int beyond float range (JSON allows up to 4,300 digits)
        raise DataError(f"wrong value in column {column!r}: score {describe(value)} is too large for a float") from None
    if not math.isfinite(score):
        raise DataError(f"wrong value in column {column!r}: score {value!r} is not finite")
    return score


def integer(text: str) -> int | None:
    """The integer written in ``text`` (ASCII digits, an optional sign, spaces around), else None.

    Stricter than ``int()``, which also takes ``1_000`` and other scripts'
    digits: what this returns is what the text visibly says. Raises
    :class:`DataError` for an integer of more than :data:`MAX_DIGITS` digits.
    """
    match = _INTEGER.fullmatch(text)
    if match is None:
        return None
    digits = len(match.group(1))
    if digits > MAX_DIGITS:
        raise DataError(f"an integer of {digits} digits (at most {MAX_DIGITS} are read)")
    return int(match.group(0))


def _numeric_looking(text: str) -> bool:
    """Only digits (of any script, superscripts included) and signs: what a reader would take for a number."""
    return any(c.isdigit() for c in text) and all(c.isdigit() or c in "+-" for c in text.strip())


def _label(value: Any, column: str, typed: bool) -> int | str:
    if not typed and isinstance(value, str):
        try:
            number = integer(value)
        except DataError as e:
            raise DataError(f"wrong value in column {column!r}: label is {e.problem}") from None
        if number is not None:
            return number
        if _numeric_looking(value):
            raise DataError(
                f"wrong value in column {column!r}: label {clip(value)!r} looks like a number but is not an integer "
                "(ASCII digits 0-9 with an optional sign); quote it with letters to use it as a name"
            )
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise DataError(f"wrong type in column {column!r}: expected an int or a string label, got {describe(value)}")
    if isinstance(value, str) and not value.strip():
        raise DataError(f"empty label in column {column!r}")
    return value


def _image(value: Any, column: str, root: Path | None) -> str:
    """The path of an existing image file named by ``value`` (relative to ``root``)."""
    path = Path(_text(value, column))
    full = path if path.is_absolute() or root is None else root / path
    try:
        found = full.is_file()
    except OSError as e:  # e.g. a name too long for the file system
        raise DataError(
            f"cannot look up the image file in column {column!r}: {clip(str(value), 200)!r} ({e.strerror})"
        ) from None
    if not found:
        raise DataError(
            f"image file not found in column {column!r}: {clip(str(value), 200)!r} (looked for {clip(str(full), 300)})"
        )
    return str(full)


def to_example(record: Mapping[str, Any], plan: Plan, typed: bool, source: str) -> Example:
    """The example of one record (column -> value); raises DataError without a location.

    ``typed`` says the values carry their types (JSON, Parquet, Arrow); when
    False (CSV/TSV) scores and integer labels are parsed from strings.
    """
    fields: dict[str, Any] = {}
    for role, names in plan.columns.items():
        for name in names:
            if name not in record:
                raise DataError(f"missing column {name!r} (role {role!r})")
        values = [record[n] for n in names]
        if role == "anchor":
            image = plan.kind == "image_text"
            fields["anchor"] = _image(values[0], names[0], plan.root) if image else _text(values[0], names[0])
        elif role in ("positive", "negative"):
            texts = [t for n, v in zip(names, values, strict=True) for t in _texts(v, n)]
            if role == "positive" and not texts:
                raise DataError(f"no positive text in column {names[0]!r} (empty list)")
            fields[role + "s"] = tuple(texts)
        elif role in SCORE_ROLES:
            fields[role] = _scores(values[0], names[0], typed)
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
            fields["group"] = str(_label(values[0], names[0], True))
    _check_score_counts(fields, plan)
    return Example(**fields, source=source)


def _scores(value: Any, column: str, typed: bool) -> tuple[float, ...]:
    """Teacher scores: a list of numbers (or one number), each checked as a score."""
    if isinstance(value, list):
        return tuple(_score(v, f"{column}[{i}]", typed) for i, v in enumerate(value))
    return (_score(value, column, typed),)


def _check_score_counts(fields: dict[str, Any], plan: Plan) -> None:
    """One teacher score per text: ``positive_scores`` as long as ``positives``, likewise for negatives; a file
    with either score column scores every text (a text list without its scores would silently not be distilled)."""
    scored = [role for role in SCORE_ROLES if role in plan.columns]
    for role, texts in SCORE_ROLES.items():
        n, m = len(fields.get(role, ())), len(fields.get(texts + "s", ()))
        if role in fields and n != m:
            raise DataError(f"column {plan.columns[role][0]!r}: {n} teacher scores for {m} {texts} texts")
        if scored and role not in fields and m:
            raise DataError(f"{m} {texts} texts without teacher scores (column {role!r}; {scored[0]!r} is given)")
