"""The objective registry: an explicit object mapping names to objective classes.

``get(name, **hparams)`` builds an objective; ``names()`` lists them. A
duplicate name is an error at registration; an unknown name or hyperparameter
is an error that names it and what is accepted.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Iterator

from contrastkit.errors import UnknownNameError
from contrastkit.objectives.base import Objective, ObjectiveInfo


class Registry:
    """Name -> objective class. Names are the lowercase names of ``objectives.md``."""

    def __init__(self) -> None:
        self._classes: dict[str, type[Objective]] = {}

    def register(self, cls: type[Objective]) -> type[Objective]:
        """Add ``cls`` under ``cls.info.name``; usable as a class decorator."""
        name = cls.info.name
        if name in self._classes:
            raise ValueError(f"objective {name!r} is already registered by {self._classes[name].__qualname__}")
        self._classes[name] = cls
        return cls

    def cls(self, name: str) -> type[Objective]:
        """The class registered as ``name``."""
        try:
            return self._classes[name]
        except KeyError:
            close = difflib.get_close_matches(name, self._classes, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UnknownNameError(f"unknown objective {name!r}{hint} (see contrastkit.objectives.names())") from None

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
        return sorted(self._classes)

    def infos(self) -> Iterator[ObjectiveInfo]:
        """Class data of every objective, in name order."""
        return (self._classes[n].info for n in self.names())

    def __contains__(self, name: object) -> bool:
        return name in self._classes


REGISTRY = Registry()
register = REGISTRY.register
