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
list for a tuple. ``True`` is not an int and ``"1"`` is not a number.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Iterator, Mapping
from typing import Any, Literal, TypeVar, Union

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration problem; ``path`` is the dotted key (``optim.lr``) or ``""`` for the whole config."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)

    def under(self, prefix: str) -> ConfigError:
        """The same error with ``prefix`` prepended to its path."""
        return ConfigError(_join(prefix, self.path), self.message)


def require(ok: bool, key: str, message: str) -> None:
    """Raise :class:`ConfigError` at ``key`` with ``message`` unless ``ok`` (a section's own value checks)."""
    if not ok:
        raise ConfigError(key, message)


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
    for key in data:
        if not isinstance(key, str) or key not in names:
            raise ConfigError(_join(path, str(key)), "unknown key" + _suggest(str(key), names, path, root))
    values = {}
    for key, value in data.items():
        values[key] = convert(hints[key], value, _join(path, key), root=root)
    try:
        return cls(**values)
    except ConfigError as err:
        raise err.under(path) from None


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
    if dataclasses.is_dataclass(tp):
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
            return float(value)
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
