"""Atomic training checkpoints: everything needed to continue a run bit for bit.

A checkpoint is a folder ``<output_dir>/checkpoints/step-<step:09d>/``:

* ``<name>.safetensors``: each module's weights (``model``, and ``loss``
  when it holds state such as a learnable temperature), safetensors only;
* ``optimizer.pt``: the optimizer's state dict (under FSDP the full state,
  keyed by parameter name: :mod:`contrastkit.training.sharding`);
* ``state.pt``: RNG states (every rank's under ``torchrun``), sampler
  position, queue, grad scaler and other loop state (tensors and plain data
  only: read with ``weights_only=True``);
* ``trainer_state.json``: step, config and metrics, for people;
* ``manifest.json``: every other file's size and SHA-256, written last.

It is written into a hidden temp folder (``.tmp-...``), every file and the
folder are fsynced, and only then is the folder renamed to its final name
(``os.replace``) and the parent fsynced. A process killed at any moment
leaves either the complete new checkpoint or none: earlier checkpoints are
untouched and :func:`latest_checkpoint` never returns a partial one. A write
that fails (a full disk) removes its temp folder and raises
:class:`CheckpointWriteError`; a tensor that is NaN or infinite is never
written (:class:`~contrastkit.training.guard.NonFiniteWeightsError`).
Pruning renames a checkpoint to a hidden ``.pruned-...`` name before
deleting it, so a kill mid-delete never leaves a listed, partial checkpoint.

Before a checkpoint is used, :func:`verify_checkpoint` compares its files
with the manifest (a missing, truncated or altered file, a folder in place
of a file, one flipped byte); :func:`newest_intact_checkpoint` falls back
to the newest checkpoint that passes. A checkpoint written before manifests
existed (no ``manifest.json``) is still listed and used when its files are
present, but it cannot be checksummed: it is only checked as far as it
loads (see :func:`verify_checkpoint`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, load_model, save_file, save_model
from torch import Tensor, nn

from contrastkit.errors import ContrastkitError
from contrastkit.training import faults
from contrastkit.training.guard import require_finite

CHECKPOINTS = "checkpoints"
MANIFEST = "manifest.json"
REQUIRED = ("optimizer.pt", "state.pt")  # what a checkpoint without a manifest must hold to be listed
LEFTOVER_PREFIXES = (".tmp-", ".old-", ".pruned-")  # hidden folders of interrupted writes, swaps and prunes
_NAME = re.compile(r"^step-(\d{9,})$")


class CheckpointWriteError(ContrastkitError, OSError):
    """Writing a checkpoint failed (a full or read-only disk); its temp folder was removed."""


class CorruptCheckpointError(ContrastkitError, ValueError):
    """A checkpoint's files do not match its manifest (or, without a manifest, do not load)."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"checkpoint {path} is damaged: {reason}")


def checkpoint_dir(output_dir: str | Path) -> Path:
    return Path(output_dir) / CHECKPOINTS


def checkpoint_path(output_dir: str | Path, step: int) -> Path:
    return checkpoint_dir(output_dir) / f"step-{step:09d}"


@dataclass
class Checkpoint:
    """What a checkpoint holds besides the module weights: the step, loop ``state`` and readable ``meta``."""

    step: int
    state: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # some filesystems cannot fsync a directory; the rename stays atomic
        _fsync_file(path)


def _torch_save(obj: object, path: Path) -> None:
    with open(path, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())


def save_checkpoint(
    output_dir: str | Path,
    checkpoint: Checkpoint,
    *,
    modules: Mapping[str, nn.Module | Mapping[str, Tensor]],
    optimizer: torch.optim.Optimizer | Mapping[str, Any],
) -> Path:
    """Write ``checkpoint`` with the ``modules``' weights and ``optimizer`` state atomically; returns its folder.

    A module may be given as its state dict and the optimizer as its state
    (what a sharded run gathers, :mod:`contrastkit.training.sharding`).
    Raises :class:`~contrastkit.training.guard.NonFiniteWeightsError` (nothing
    written) when a weight or an optimizer tensor is NaN or infinite, and
    :class:`CheckpointWriteError` (the temp folder removed, earlier
    checkpoints untouched) when the disk refuses a write.
    """
    weights = {name: m.state_dict() if isinstance(m, nn.Module) else m for name, m in modules.items()}
    state = optimizer.state_dict() if isinstance(optimizer, torch.optim.Optimizer) else dict(optimizer)
    require_finite({**weights, "optimizer": state.get("state", {})}, f"checkpoint step {checkpoint.step}")
    root = checkpoint_dir(output_dir)
    final = checkpoint_path(output_dir, checkpoint.step)
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir()
        _write_files(tmp, checkpoint, modules, state)
        faults.checkpoint_written(checkpoint.step)
        _replace_dir(tmp, final)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        latest = latest_checkpoint(output_dir)
        kept = f"the last complete checkpoint is {latest}" if latest else "no earlier checkpoint exists"
        error = CheckpointWriteError(
            f"cannot write checkpoint {final.name} in {root}: {err.strerror or err} "
            f"({err.filename or tmp}); the partial write was removed, {kept}"
        )
        error.errno = err.errno
        raise error from err
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(root)
    _remove_stale_temps(root)
    return final


def _write_files(
    tmp: Path, checkpoint: Checkpoint, modules: Mapping[str, nn.Module | Mapping[str, Tensor]], state: dict
) -> None:
    """Every file of a checkpoint into ``tmp``, each fsynced, the manifest last."""
    for name, module in modules.items():
        file = tmp / f"{name}.safetensors"
        if isinstance(module, nn.Module):
            if not module.state_dict():
                continue
            save_model(module, str(file))  # handles tied weights
        elif module:
            save_file({k: v.contiguous() for k, v in module.items()}, str(file))
        else:
            continue
        _fsync_file(file)
    _torch_save(state, tmp / "optimizer.pt")
    _torch_save({"step": checkpoint.step, **checkpoint.state}, tmp / "state.pt")
    meta = {"step": checkpoint.step, **checkpoint.meta}
    (tmp / "trainer_state.json").write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")
    _fsync_file(tmp / "trainer_state.json")
    files = {p.name: {"size": p.stat().st_size, "sha256": _sha256(p)} for p in sorted(tmp.iterdir())}
    (tmp / MANIFEST).write_text(json.dumps({"format": 1, "files": files}, indent=1), encoding="utf-8")
    _fsync_file(tmp / MANIFEST)
    _fsync_dir(tmp)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def _replace_dir(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``; an existing ``dst`` (the same step saved again) is swapped out first."""
    if not dst.exists():
        os.replace(src, dst)
        return
    old = dst.with_name(f".old-{dst.name}-{os.getpid()}")
    os.replace(dst, old)
    os.replace(src, dst)
    shutil.rmtree(old, ignore_errors=True)


def _remove_stale_temps(root: Path, prefixes: tuple[str, ...] = LEFTOVER_PREFIXES) -> list[Path]:
    """Remove the entries of ``root`` whose names start with ``prefixes`` (default: the hidden leftovers of
    interrupted checkpoint writes, swaps and prunes); returns them.

    Only safe while this process owns the run folder (the run lock,
    :mod:`contrastkit.training.rundir`): another run's write in progress is a ``.tmp-`` folder too.
    """
    removed = []
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        if path.name.startswith(prefixes):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def remove_checkpoint_leftovers(output_dir: str | Path, run_prefixes: tuple[str, ...] = ()) -> list[Path]:
    """Remove the leftovers of a killed run's checkpoint writes and prunes under ``output_dir``, and the entries
    of ``output_dir`` itself that start with ``run_prefixes`` (its own interrupted writes); returns them."""
    removed = _remove_stale_temps(checkpoint_dir(output_dir))
    return removed + (_remove_stale_temps(Path(output_dir), run_prefixes) if run_prefixes else [])


def _complete(path: Path) -> bool:
    """Published with a manifest, or (written before manifests) holding the files every checkpoint has."""
    if (path / MANIFEST).is_file():
        return True
    return all((path / name).is_file() for name in REQUIRED)


def list_checkpoints(output_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints in ``output_dir`` as (step, folder), oldest first; temp folders are ignored.

    Complete means published (a manifest) or, for a checkpoint written before
    manifests, holding ``optimizer.pt`` and ``state.pt``; whether the bytes are
    intact is :func:`verify_checkpoint`'s question.
    """
    root = checkpoint_dir(output_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _NAME.match(p.name)) and p.is_dir()]
    return sorted((step, p) for step, p in found if _complete(p))


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The checkpoint with the highest step, or None."""
    found = list_checkpoints(output_dir)
    return found[-1][1] if found else None


def prune_checkpoints(output_dir: str | Path, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest checkpoints; returns the deleted folders."""
    found = list_checkpoints(output_dir)
    doomed = [p for _, p in found[: max(0, len(found) - keep)]]
    for path in doomed:
        hidden = path.with_name(f".pruned-{path.name}-{os.getpid()}")
        os.replace(path, hidden)  # unlisted at once; a kill during the delete leaves only a hidden leftover
        shutil.rmtree(hidden)
    if doomed:
        _fsync_dir(checkpoint_dir(output_dir))
    return doomed


def verify_checkpoint(path: str | Path) -> bool:
    """Check ``path``'s files against its manifest; True when verified, False for a checkpoint without one.

    Raises :class:`CorruptCheckpointError` naming the first file that is
    missing, not a regular file, of another size or of another SHA-256. A
    checkpoint without a manifest (written before contrastkit wrote
    manifests) cannot be checksummed: it passes when its files load
    (``state.pt``, ``optimizer.pt``, every ``*.safetensors``), which catches
    truncated and empty files but not altered bytes.
    """
    path = Path(path)
    manifest_file = path / MANIFEST
    if not path.is_dir():
        raise CorruptCheckpointError(path, "not a folder")
    if not manifest_file.exists():
        _check_loads(path)
        return False
    try:
        files = json.loads(manifest_file.read_text(encoding="utf-8"))["files"]
        entries = {str(name): (int(e["size"]), str(e["sha256"])) for name, e in files.items()}
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as err:
        raise CorruptCheckpointError(path, f"{MANIFEST} is unreadable ({type(err).__name__}: {err})") from None
    for name, (size, digest) in sorted(entries.items()):
        file = path / name
        if file.is_dir():
            raise CorruptCheckpointError(path, f"{name} is a folder, not a file")
        if not file.is_file():
            raise CorruptCheckpointError(path, f"{name} is missing")
        actual = file.stat().st_size
        if actual != size:
            raise CorruptCheckpointError(path, f"{name} has {actual} bytes, the manifest says {size} (truncated?)")
        if _sha256(file) != digest:
            raise CorruptCheckpointError(path, f"{name} does not match its SHA-256 in the manifest (altered bytes)")
    return True


def checkpoint_size(path: str | Path) -> int:
    """Bytes a checkpoint folder takes (its files' sizes)."""
    return sum(p.stat().st_size for p in Path(path).iterdir() if p.is_file())


def _check_loads(path: Path) -> None:
    """A manifest-less checkpoint's check: every file it must have is a file that loads."""
    for name in REQUIRED:
        if not (path / name).is_file():
            raise CorruptCheckpointError(path, f"{name} is missing or not a file")
    files = [path / name for name in REQUIRED] + sorted(path.glob("*.safetensors"))
    for file in files:
        try:
            if file.suffix == ".pt":
                torch.load(file, map_location="cpu", weights_only=True)
            else:
                load_file(str(file))
        except Exception as err:  # any failure to read is damage here (pickle, zip, safetensors, OS errors)
            raise CorruptCheckpointError(path, f"{file.name} does not load ({type(err).__name__}: {err})") from None


def newest_intact_checkpoint(output_dir: str | Path) -> tuple[Path | None, list[str], bool]:
    """The newest checkpoint that passes :func:`verify_checkpoint` (None when there is none at all), one
    message per newer checkpoint skipped as damaged, and whether the one returned was checksummed (False for a
    checkpoint without a manifest).

    Raises :class:`CorruptCheckpointError` (on the newest) listing every
    checkpoint's problem when checkpoints exist but none is intact.
    """
    damaged: list[str] = []
    found = list_checkpoints(output_dir)
    for _, path in reversed(found):
        try:
            checksummed = verify_checkpoint(path)
        except CorruptCheckpointError as err:
            damaged.append(str(err))
            continue
        return path, damaged, checksummed
    if found:
        raise CorruptCheckpointError(
            found[-1][1], f"no intact checkpoint in {checkpoint_dir(output_dir)}: " + "; ".join(damaged)
        )
    return None, [], True


def load_checkpoint(
    path: str | Path,
    *,
    modules: dict[str, nn.Module],
    optimizer: torch.optim.Optimizer | None = None,
    map_location: str | torch.device = "cpu",
) -> Checkpoint:
    """Load weights into ``modules`` (strictly) and ``optimizer`` (when given); returns the step, state and meta.

    Raises ``FileNotFoundError`` naming the missing file when the folder is
    not a complete checkpoint, and ``RuntimeError`` from safetensors when the
    weights do not fit the modules.
    """
    path = Path(path)
    for name, module in modules.items():
        file = path / f"{name}.safetensors"
        if module.state_dict():
            if not file.is_file():
                raise FileNotFoundError(f"checkpoint {path} has no {file.name}")
            device = next((t.device for t in module.state_dict().values()), torch.device("cpu"))
            load_model(module, str(file), strict=True, device=str(device))
    if optimizer is not None:
        optimizer.load_state_dict(torch.load(path / "optimizer.pt", map_location=map_location, weights_only=True))
    state = torch.load(path / "state.pt", map_location="cpu", weights_only=True)
    meta_file = path / "trainer_state.json"
    meta = json.loads(meta_file.read_text(encoding="utf-8")) if meta_file.is_file() else {}
    step = int(state.pop("step"))
    return Checkpoint(step=step, state=state, meta=meta)
