"""A loaded model's identity without reading its weights back: the folder it came from, while it is unchanged.

:func:`~contrastkit.encoders.auto.load_encoder` records on each encoder the
folder it was read from and the state of its tensors at that moment
(each parameter's and buffer's storage pointer and version counter, which
optimizers, ``load_state_dict`` and in-place edits bump). While the tensors
are in that state, :func:`source_identity` names the encoder by the content
of its folder: a SHA-256 over every file's relative path and bytes, computed
once per file and process (a file is re-read when its size or modification
time changes). That costs one read of the files, never a copy of the weights
from the device, and nothing at all on later calls. An encoder that was
trained or edited after loading has no source identity: its users fall back
to hashing the tensors (:func:`contrastkit.evaluation.cache.model_fingerprint`).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from torch import nn

_CHUNK = 1 << 20
_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}
P = ParamSpec("P")
M = TypeVar("M")
E = TypeVar("E")


@dataclass(frozen=True)
class LoadedFrom:
    """Where an encoder was read from, and its tensors' ``(data_ptr, _version)`` pairs just after."""

    folder: Path
    versions: tuple[int, ...]


def tensor_versions(module: nn.Module) -> tuple[int, ...]:
    """Every parameter's and buffer's storage pointer and version counter, flattened (no data is read)."""
    return tuple(v for t in module.state_dict(keep_vars=True).values() for v in (t.data_ptr(), t._version))


def remember_source(encoder: E, folder: str | Path) -> E:
    """Record on ``encoder`` (an ``nn.Module``; other objects are returned untouched) that it is ``folder``'s model."""
    if isinstance(encoder, nn.Module):
        # a plain attribute: what nn.Module.__setattr__ does for a value that is neither a tensor nor a module
        object.__setattr__(encoder, "_loaded_from", LoadedFrom(Path(folder).resolve(), tensor_versions(encoder)))
    return encoder


def records_source(
    resolve: Callable[[M], Path],
) -> Callable[[Callable[Concatenate[M, P], E]], Callable[Concatenate[M, P], E]]:
    """Decorate a loader ``load(model, ...) -> encoder`` so that its result remembers the folder ``resolve(model)``."""

    def decorate(load: Callable[Concatenate[M, P], E]) -> Callable[Concatenate[M, P], E]:
        @functools.wraps(load)
        def wrapper(model: M, /, *args: P.args, **kwargs: P.kwargs) -> E:
            return remember_source(load(model, *args, **kwargs), resolve(model))

        return wrapper

    return decorate


def source_identity(encoder: Any) -> str | None:
    """SHA-256 (hex) of the folder ``encoder`` was loaded from, or None when unknown or the encoder changed since."""
    loaded: LoadedFrom | None = getattr(encoder, "_loaded_from", None)
    if loaded is None or not isinstance(encoder, nn.Module) or tensor_versions(encoder) != loaded.versions:
        return None
    return folder_digest(loaded.folder)


def folder_digest(folder: Path) -> str:
    """SHA-256 (hex) over every file below ``folder`` (relative path and content), sorted; hidden ones skipped."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not _hidden(p.relative_to(folder))):
        h.update(f"{path.relative_to(folder).as_posix()}\0{file_digest(path)}\n".encode())
    return h.hexdigest()


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def file_digest(path: Path) -> str:
    """SHA-256 (hex) of a file's bytes, memoised per process by (path, size, modification time)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_DIGESTS:
        h = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
        _FILE_DIGESTS[key] = h.hexdigest()
    return _FILE_DIGESTS[key]
