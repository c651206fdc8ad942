"""YAML in: a config file and ``a.b.c=value`` overrides, read into plain nested dicts with located errors.

The loader is YAML's safe loader with one change: ``1e-4`` (no dot) reads
as a float, as in YAML 1.2 and as people write learning rates; PyYAML's
YAML 1.1 rules would make it a string. Overrides are parsed by
:func:`parse_value`: YAML scalars and flow collections, and plain text for
anything else (``model.prompts.query=query: ``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from contrastkit.training.schema import ConfigError


class _Loader(yaml.SafeLoader):
    """YAML's safe loader, also reading ``1e-4`` (no dot) as a float, as YAML 1.2 and people do."""


_FLOAT = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_Loader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
for _first in "-+0123456789.":
    _Loader.yaml_implicit_resolvers[_first] = [
        (tag, rx) for tag, rx in _Loader.yaml_implicit_resolvers.get(_first, []) if tag != "tag:yaml.org,2002:float"
    ]
    _Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list(_first))


def load_yaml(text: str) -> Any:
    """``text`` parsed by the safe loader (with YAML 1.2 floats)."""
    return yaml.load(text, Loader=_Loader)


def key_lines(text: str) -> dict[str, int]:
    """The 1-based line of every key of YAML ``text``, by dotted path (``optim.lr``, ``data.train[1]``).

    Keys of mappings inside lists are ``a[0].b``. Text that is not valid
    YAML gives {} (:func:`read_yaml` reports it).
    """
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError:
        return {}
    lines: dict[str, int] = {}

    def walk(node: yaml.Node, path: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                child = f"{path}.{key.value}" if path else str(key.value)
                lines.setdefault(child, key.start_mark.line + 1)
                walk(value, child)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                lines.setdefault(f"{path}[{i}]", item.start_mark.line + 1)
                walk(item, f"{path}[{i}]")

    if root is not None:
        walk(root, "")
    return lines


def read_yaml(path: Path, lines: dict[str, int] | None = None) -> dict[str, Any]:
    """The mapping in YAML file ``path`` ({} for an empty file); ConfigError with the line for bad YAML.

    ``lines``, when given, is filled with the line of every key (:func:`key_lines`).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError("", f"cannot read config file {str(path)!r}: {err.strerror or err}") from None
    except UnicodeDecodeError as err:
        raise ConfigError("", f"config file {str(path)!r} is not UTF-8 text (byte {err.start})") from None
    if lines is not None:
        lines.update(key_lines(text))
    try:
        data = load_yaml(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError("", f"{path}:{where}: invalid YAML: {problem}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("", f"{path}: the top level must be a mapping of sections, got {type(data).__name__}")
    return data


def apply_override(data: dict[str, Any], override: str) -> None:
    """Set ``a.b.c=value`` in nested dict ``data`` (in place); ``value`` is parsed by :func:`parse_value`."""
    key, sep, raw = override.partition("=")
    key = key.strip()
    if not sep:
        raise ConfigError("", f"override {override!r}: expected KEY=VALUE (e.g. optim.lr=1e-4)")
    parts = key.split(".")
    if not key or any(not p or not p.replace("_", "").replace("-", "").isalnum() for p in parts):
        raise ConfigError("", f"override {override!r}: {key!r} is not a dotted key like optim.lr")
    value = parse_value(key, raw)
    node = data
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            where = ".".join(parts[: depth + 1])
            raise ConfigError(key, f"{where} is a value, not a section: cannot set {key}")
        node = child
    node[parts[-1]] = value


def parse_value(key: str, raw: str) -> Any:
    """A YAML scalar (``1e-4``, ``true``, ``null``, ``'quoted'``) or flow collection (``[8, 4]``, ``{a: b}``).

    Text that is not a YAML scalar and does not start like a flow collection
    or a quoted string (``query: ``) is taken as the plain string it is.
    """
    text = raw.strip()
    if not text:
        return ""
    structured = text[0] in "[{\"'"
    try:
        value = load_yaml(text)
    except yaml.YAMLError as err:
        if not structured:
            return raw
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(key, f"override value {raw!r} is not valid YAML: {problem}") from None
    if isinstance(value, dict | list) and not structured:
        return raw
    return value
