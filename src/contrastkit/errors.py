"""The family of user-facing errors: wrong input that the user can fix, as opposed to a bug in contrastkit.

Every error that names what the user gave (a config key, a data file and line,
a model folder, a command-line option, a checkpoint, an output path) derives
from :class:`ContrastkitError`. The CLI prints such an error's message on one
line and exits with status 2; any other exception is a bug and keeps its
traceback. The subclasses also derive from the built-in type that callers
caught before (``ValueError``, ``OSError``), so ``except ValueError`` still
catches a :class:`~contrastkit.data.errors.DataError`.

This module imports nothing from the package, so every layer may raise its errors.

Example::

    >>> from contrastkit.data.errors import DataError
    >>> issubclass(DataError, ContrastkitError) and issubclass(DataError, ValueError)
    True
"""


class ContrastkitError(Exception):
    """Input the user can fix; the message says what and where (file, line, key or option)."""


class UsageError(ContrastkitError, ValueError):
    """A value the user chose that the library cannot use: an option, a split, a setting out of its range."""


class UnknownNameError(ContrastkitError, KeyError):
    """A name that is not registered (an objective, a task type); the message lists or suggests the valid ones."""

    def __str__(self) -> str:  # KeyError quotes its message; this error's message is a sentence
        return str(self.args[0]) if self.args else ""
