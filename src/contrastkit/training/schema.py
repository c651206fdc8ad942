"""Strict conversion of nested plain data (YAML) into frozen dataclasses, with errors that name the dotted path.

:func:`build` walks a dataclass type and a mapping together: every key must
be a field (else :class:`ConfigError` with the dotted path and the closest
valid key), every value must match the field's annotation (``int``,
``float``, ``bool``, ``str``, ``None`` unions, ``Literal``, ``tuple[X, ...]``,
``dict[str, X]``, ``Any`` and nested dataclasses), and missing fields take
their defaults. :func:`to_plain` is the inverse: a dataclass back to plain
YAML-safe data, so that ``build(T, to_plain(x)) == x``.

No coercion beyond the safe ones: an int is accepted for a float field, a
single scalar for a ``tuple[X, ...]`` field (as a one-element tuple) and a
list for a tuple. ``True`` is not an int and ``"1"`` is not a number. A
float field takes finite numbers only (``.inf`` and ``.nan`` are refused).

Problems are collected, not raised one by one: unknown keys, wrong types and
every failed :func:`require` check of every section come back together in
one :class:`ConfigError` (its ``errors``).
"""

from __future__ import annotations

import contextvars
import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar, Union

from contrastkit.errors import ContrastkitError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")


class ConfigError(ContrastkitError, ValueError):
    """A configuration problem; ``path`` is the dotted key (``optim.lr``) or ``""`` for the whole config.

    ``where`` locates the key in a YAML file (``cfg.yaml:12``) when it came
    from one. One ConfigError may carry several problems (``errors``, in the
    order found; ``path`` and ``message`` are the first one's): :func:`build`
    reports every problem of a config at once. A single problem reads
    ``[where: ]path: message``; several read ``N problems in the config:``
    and one such line each.
    """

    def __init__(self, path: str, message: str, *, where: str | None = None) -> None:
        self.path = path
        self.message = message
        self.where = where
        self.errors: tuple[ConfigError, ...] = (self,)
        super().__init__(self._line())

    def _line(self) -> str:
        text = f"{self.path}: {self.message}" if self.path else self.message
        return f"{self.where}: {text}" if self.where else text

    def __str__(self) -> str:
        if len(self.errors) == 1:
            return self._line()
        return f"{len(self.errors)} problems in the config:\n" + "\n".join(f"  {e._line()}" for e in self.errors)

    @classmethod
    def of(cls, errors: Sequence[ConfigError]) -> ConfigError:
        """One error carrying every problem of ``errors`` (each may carry several); ``errors`` must not be empty."""
        flat = [e for err in errors for e in err.errors]
        if len(flat) == 1:
            return flat[0]
        combined = cls(flat[0].path, flat[0].message, where=flat[0].where)
        combined.errors = tuple(flat)
        combined.args = (str(combined),)
        return combined

    def under(self, prefix: str) -> ConfigError:
        """The same error(s) with ``prefix`` prepended to each path."""
        return ConfigError.of([ConfigError(_join(prefix, e.path), e.message, where=e.where) for e in self.errors])

    def located(self, locate: Callable[[str], str | None]) -> ConfigError:
        """The same error(s), each without a ``where`` given ``locate(path)`` (e.g. ``cfg.yaml:12``, or None)."""
        return ConfigError.of([ConfigError(e.path, e.message, where=e.where or locate(e.path)) for e in self.errors])


_collected: contextvars.ContextVar[list[ConfigError] | None] = contextvars.ContextVar("_collected", default=None)


def require(ok: bool, key: str, message: str) -> None:
    """Raise :class:`ConfigError` at ``key`` with ``message`` unless ``ok`` (a section's own value checks).

    While :func:`build` constructs a section the problem is recorded instead,
    and the section's remaining checks run too, so that every problem is
    reported at once.
    """
    if ok:
        return
    found = _collected.get()
    if found is None:
        raise ConfigError(key, message)
    found.append(ConfigError(key, message))


def _construct(cls: type[T], values: dict[str, Any], path: str) -> T:
    """``cls(**values)``, every :func:`require` problem of its checks (and a ConfigError it raises) under ``path``."""
    found: list[ConfigError] = []
    token = _collected.set(found)
    try:
        instance = cls(**values)
    except ConfigError as err:
        found.append(err)
    finally:
        _collected.reset(token)
    if found:
        raise ConfigError.of(found).under(path)
    return instance


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix and key else prefix or key


def type_name(tp: Any) -> str:
    """A readable name of an annotation: ``int``, ``float or null``, ``one of 'a', 'b'``, ``list of int``."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return "any value"
    if tp is type(None):
        return "null"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(tp))
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return f"list of {type_name(args[0])}"
        return f"list of {len(args)} ({', '.join(type_name(a) for a in args)})"
    if origin is dict:
        return f"mapping of {type_name(typing.get_args(tp)[1])}"
    if dataclasses.is_dataclass(tp):
        return "mapping (section)"
    return getattr(tp, "__name__", str(tp))


def _value_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "mapping"
    if isinstance(value, list | tuple):
        return "list"
    return f"{type(value).__name__} {value!r}"


def closest(key: str, candidates: list[str]) -> str | None:
    """The candidate most like ``key`` (difflib ratio >= 0.6, case-insensitive), or None."""
    lowered = {c.lower(): c for c in candidates}
    match = difflib.get_close_matches(key.lower(), list(lowered), n=1, cutoff=0.6)
    return lowered[match[0]] if match else None


def field_paths(cls: type, prefix: str = "") -> Iterator[str]:
    """Every dotted leaf path of dataclass ``cls`` (sections recursed)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        path = _join(prefix, f.name)
        if dataclasses.is_dataclass(hints[f.name]):
            yield from field_paths(hints[f.name], path)
        else:
            yield path


def build(cls: type[T], data: object, path: str = "", *, root: type | None = None) -> T:
    """An instance of dataclass ``cls`` from mapping ``data``; :class:`ConfigError` names the bad key's path."""
    root = root or cls
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(path, f"expected a mapping (section), got {_value_name(data)}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    errors: list[ConfigError] = []
    values = {}
    for key, value in data.items():
        if not isinstance(key, str) or key not in names:
            errors.append(ConfigError(_join(path, str(key)), "unknown key" + _suggest(str(key), names, path, root)))
            continue
        try:
            values[key] = convert(hints[key], value, _join(path, key), root=root)
        except ConfigError as err:
            errors.append(err)  # the field keeps its default, so the section's own checks still run
    try:
        instance = _construct(cls, values, path)
    except ConfigError as err:
        errors.append(err)
    if errors:
        raise ConfigError.of(errors)
    return instance


def _suggest(key: str, names: list[str], path: str, root: type) -> str:
    near = closest(key, names)
    if near is not None:
        return f"; did you mean {_join(path, near)!r}?"
    leaves = list(field_paths(root))
    by_leaf = [p for p in leaves if p.rsplit(".", 1)[-1] == key]
    if by_leaf:
        return f"; did you mean {by_leaf[0]!r}?"
    near_leaf = closest(key, [p.rsplit(".", 1)[-1] for p in leaves])
    if near_leaf is not None:
        full = next(p for p in leaves if p.rsplit(".", 1)[-1] == near_leaf)
        return f"; did you mean {full!r}?"
    return f"; valid keys here: {', '.join(names)}"


def convert(tp: Any, value: object, path: str, *, root: type | None = None) -> Any:
    """``value`` checked against annotation ``tp`` (and converted: lists to tuples, ints to floats)."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return _freeze(value)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return build(tp, value, path, root=root)
    if origin in (Union, types.UnionType):
        return _convert_union(tp, value, path, root)
    if tp is type(None):
        if value is None:
            return None
    elif origin is Literal:
        if any(value == a and type(value) is type(a) for a in typing.get_args(tp)):
            return value
    elif origin is tuple:
        return _convert_tuple(tp, value, path, root)
    elif origin is dict:
        return _convert_dict(tp, value, path, root)
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:
                raise ConfigError(path, "must be a finite number, got an int beyond float range") from None
            if not math.isfinite(number):
                raise ConfigError(path, f"must be a finite number, got {_value_name(value)}")
            return number
    elif tp is str:
        if isinstance(value, str):
            return value
    else:
        raise TypeError(f"schema: unsupported annotation {tp!r} at {path}")
    raise ConfigError(path, f"expected {type_name(tp)}, got {_value_name(value)}")


def _convert_union(tp: Any, value: object, path: str, root: type | None) -> Any:
    args = typing.get_args(tp)
    if value is None and type(None) in args:
        return None
    given = [a for a in args if a is not type(None)]
    if len(given) == 1:  # ``X | None``: X's own message (``must be a finite number``, a sub-key's problem)
        try:
            return convert(given[0], value, path, root=root)
        except ConfigError as err:
            if err.path != path or not err.message.startswith("expected "):
                raise
        raise ConfigError(path, f"expected {type_name(tp)}, got {_value_name(value)}")
    errors = []
    for arg in args:
        if arg is type(None):
            continue
        try:
            return convert(arg, value, path, root=root)
        except ConfigError as err:
            errors.append(err)
    deeper = [e for e in errors if e.path != path]
    if len(deeper) == 1:
        raise deeper[0]
    raise ConfigError(path, f"expected {type_name(tp)}, got {_value_name(value)}")


def _convert_tuple(tp: Any, value: object, path: str, root: type | None) -> tuple:
    args = typing.get_args(tp)
    variadic = len(args) == 2 and args[1] is Ellipsis
    if variadic and not isinstance(value, list | tuple | Mapping):
        value = [value]
    if not isinstance(value, list | tuple):
        raise ConfigError(path, f"expected {type_name(tp)}, got {_value_name(value)}")
    if variadic:
        return tuple(convert(args[0], v, f"{path}[{i}]", root=root) for i, v in enumerate(value))
    if len(value) != len(args):
        raise ConfigError(path, f"expected {type_name(tp)}, got a list of {len(value)}")
    return tuple(convert(a, v, f"{path}[{i}]", root=root) for i, (a, v) in enumerate(zip(args, value, strict=True)))


def _convert_dict(tp: Any, value: object, path: str, root: type | None) -> dict:
    if not isinstance(value, Mapping):
        raise ConfigError(path, f"expected {type_name(tp)}, got {_value_name(value)}")
    _, value_tp = typing.get_args(tp)
    out = {}
    for k, v in value.items():
        if not isinstance(k, str):
            raise ConfigError(_join(path, str(k)), f"keys must be strings, got {_value_name(k)}")
        out[k] = convert(value_tp, v, _join(path, k), root=root)
    return out


def _freeze(value: object) -> object:
    if isinstance(value, list | tuple):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, Mapping):
        return {str(k): _freeze(v) for k, v in value.items()}
    return value


def to_plain(obj: object) -> object:
    """Dataclasses to dicts, tuples to lists, recursively (YAML-safe)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list | tuple):
        return [to_plain(v) for v in obj]
    if isinstance(obj, Mapping):
        return {k: to_plain(v) for k, v in obj.items()}
    return obj
