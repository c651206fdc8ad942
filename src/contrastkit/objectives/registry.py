"""The objective registry: an explicit object mapping names to objective classes.

``get(name, **hparams)`` builds an objective; ``names()`` lists them. A
duplicate name is an error at registration; an unknown name or hyperparameter
is an error that names it and what is accepted.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from contrastkit.errors import UnknownNameError
from contrastkit.objectives.base import Objective, ObjectiveInfo

T = TypeVar("T")
_LIST_ALL = 30  # an unknown name lists every valid one up to this many


class NameRegistry(Generic[T]):
    """Names -> entries of one kind (``kind`` names it in errors), each name registered once.

    ``normalize`` maps a name to its key (e.g. lowercase); an unknown name is an
    :class:`~contrastkit.errors.UnknownNameError` suggesting the closest ones, or
    listing all of them when there are few. Objectives and evaluation tasks both
    use it.
    """

    def __init__(self, kind: str, *, normalize: Callable[[str], str] = str, hint: str = "") -> None:
        self.kind, self.normalize, self.hint = kind, normalize, hint
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        """Register ``entry`` under ``name``; a name registered twice is a ValueError."""
        key = self.normalize(name)
        if key in self._entries:
            raise ValueError(f"{self.kind} {key!r} is already registered ({self._entries[key]!r})")
        self._entries[key] = entry
        return entry

    def __getitem__(self, name: str) -> T:
        key = self.normalize(name)
        if key not in self._entries:
            raise UnknownNameError(f"unknown {self.kind} {name!r}{self._suggest(key)}{self.hint}")
        return self._entries[key]

    def _suggest(self, key: str) -> str:
        """The closest names, or (for a short list) every name."""
        close = difflib.get_close_matches(key, self._entries, n=3)
        if close:
            return f"; did you mean {', '.join(close)}?"
        return f"; expected one of {', '.join(self._entries)}" if len(self._entries) <= _LIST_ALL else ""

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.normalize(name) in self._entries


class Registry:
    """Name -> objective class. Names are the lowercase names of ``objectives.md``."""

    def __init__(self) -> None:
        self._classes: NameRegistry[type[Objective]] = NameRegistry(
            "objective", hint=" (see contrastkit.objectives.names())"
        )

    def register(self, cls: type[Objective]) -> type[Objective]:
        """Add ``cls`` under ``cls.info.name``; usable as a class decorator."""
        return self._classes.add(cls.info.name, cls)

    def cls(self, name: str) -> type[Objective]:
        """The class registered as ``name``."""
        return self._classes[name]

    def get(self, name: str, **hparams: object) -> Objective:
        """Instantiate ``name`` with ``hparams``; an unknown hyperparameter is a ``TypeError`` naming it."""
        cls = self.cls(name)
        params = inspect.signature(cls.__init__).parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        unknown = [k for k in hparams if k not in params or k == "self"]
        if unknown and not takes_any:
            accepted = ", ".join(p for p in params if p != "self") or "none"
            raise TypeError(f"objective {name!r} has no hyperparameter {', '.join(unknown)} (accepted: {accepted})")
        return cls(**hparams)

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._classes.names())

    def infos(self) -> Iterator[ObjectiveInfo]:
        """Class data of every objective, in name order."""
        return (self._classes[n].info for n in self.names())

    def __contains__(self, name: object) -> bool:
        return name in self._classes


REGISTRY = Registry()
register = REGISTRY.register
