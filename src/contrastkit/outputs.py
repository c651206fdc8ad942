"""Checking where a command will write, before it does any work.

:func:`output_problem` says in words why a path cannot be written as a file
or as a folder (it is the other kind, a parent is a file, the file system is
read-only or full, no permission), or returns None. It writes nothing that
stays: the probe is an anonymous temporary file in the nearest existing
folder, written and fsynced, which also catches a full disk.
:func:`explain_os_error` turns an ``OSError`` met while writing into the
same words. Light on purpose (no torch): the CLI calls it first thing.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from contrastkit.errors import UsageError


def explain_os_error(err: OSError, path: str | Path) -> str:
    """A reason in words for ``err``, met while writing at ``path`` (the error's own file name when it has one)."""
    where = err.filename or path
    if err.errno == errno.EROFS:
        return f"{where} is on a read-only file system"
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on the device of {where} (the file system is full)"
    if err.errno in (errno.EACCES, errno.EPERM):
        return f"no permission to write in {where}"
    return f"cannot write in {where}: {err.strerror or err}"


def shape_problem(path: str | Path, *, folder: bool) -> str | None:
    """Why ``path`` cannot become a folder (``folder=True``) or a file, judging only by what exists: the path is
    the other kind, or one of its existing parents is a file. None when it can."""
    path = Path(path)
    if path.exists():
        if folder and not path.is_dir():
            return f"{path} is a file, not a folder"
        if not folder and path.is_dir():
            return f"{path} is a folder, not a file"
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                return f"cannot create {path}: its parent {parent} is a file, not a folder"
            break
    return None


def output_problem(path: str | Path, *, folder: bool) -> str | None:
    """Why ``path`` cannot be written as a folder or a file (:func:`shape_problem`, then a probe write in the
    nearest existing folder for permissions, a read-only or a full file system); None when it can."""
    path = Path(path)
    problem = shape_problem(path, folder=folder)
    if problem is not None:
        return problem
    candidates = (path, *path.parents) if folder else tuple(path.parents)
    base = next((p for p in candidates if p.exists()), Path("."))
    try:
        with tempfile.TemporaryFile(dir=base) as probe:
            probe.write(b"\0" * 4096)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as err:
        return explain_os_error(err, base)
    return None


def require_writable(option: str, path: str | Path, *, folder: bool = False) -> None:
    """:class:`~contrastkit.errors.UsageError` naming the command-line ``option`` and why ``path`` cannot be
    written (:func:`output_problem`); nothing when it can."""
    problem = output_problem(path, folder=folder)
    if problem is not None:
        raise UsageError(f"{option}: {problem}")
