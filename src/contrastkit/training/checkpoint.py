"""Atomic training checkpoints: everything needed to continue a run bit for bit.

A checkpoint is a folder ``<output_dir>/checkpoints/step-<step:09d>/``:

* ``<name>.safetensors``: each module's weights (``model``, and ``loss``
  when it holds state such as a learnable temperature), safetensors only;
* ``optimizer.pt``: the optimizer's state dict (under FSDP the full state,
  keyed by parameter name: :mod:`contrastkit.training.sharding`);
* ``state.pt``: RNG states (every rank's under ``torchrun``), sampler
  position, queue, grad scaler and other loop state (tensors and plain data
  only: read with ``weights_only=True``);
* ``trainer_state.json``: step, config and metrics, for people.

It is written into a hidden temp folder (``.tmp-...``), every file and the
folder are fsynced, and only then is the folder renamed to its final name
(``os.replace``) and the parent fsynced. A process killed at any moment
leaves either the complete new checkpoint or none: earlier checkpoints are
untouched and :func:`latest_checkpoint` never returns a partial one.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_model, save_file, save_model
from torch import Tensor, nn

from contrastkit.training import faults

CHECKPOINTS = "checkpoints"
_NAME = re.compile(r"^step-(\d{9,})$")


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
    """
    root = checkpoint_dir(output_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = checkpoint_path(output_dir, checkpoint.step)
    tmp = root / f".tmp-{final.name}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    for name, module in modules.items():
        file = tmp / f"{name}.safetensors"
        if isinstance(module, nn.Module):
            if module.state_dict():
                save_model(module, str(file))
                _fsync_file(file)
        elif module:
            save_file({k: v.contiguous() for k, v in module.items()}, str(file))
            _fsync_file(file)
    state = optimizer.state_dict() if isinstance(optimizer, torch.optim.Optimizer) else dict(optimizer)
    _torch_save(state, tmp / "optimizer.pt")
    _torch_save({"step": checkpoint.step, **checkpoint.state}, tmp / "state.pt")
    meta = {"step": checkpoint.step, **checkpoint.meta}
    (tmp / "trainer_state.json").write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")
    _fsync_file(tmp / "trainer_state.json")
    _fsync_dir(tmp)
    faults.checkpoint_written(checkpoint.step)
    _replace_dir(tmp, final)
    _fsync_dir(root)
    _remove_stale_temps(root)
    return final


def _replace_dir(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``; an existing ``dst`` (the same step saved again) is swapped out first."""
    if not dst.exists():
        os.replace(src, dst)
        return
    old = dst.with_name(f".old-{dst.name}-{os.getpid()}")
    os.replace(dst, old)
    os.replace(src, dst)
    shutil.rmtree(old, ignore_errors=True)


def _remove_stale_temps(root: Path) -> None:
    for path in root.iterdir():
        if path.name.startswith((".tmp-", ".old-")) and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)


def list_checkpoints(output_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints in ``output_dir`` as (step, folder), oldest first; temp folders are ignored."""
    root = checkpoint_dir(output_dir)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _NAME.match(p.name)) and p.is_dir()]
    return sorted(found)


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The checkpoint with the highest step, or None."""
    found = list_checkpoints(output_dir)
    return found[-1][1] if found else None


def prune_checkpoints(output_dir: str | Path, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest checkpoints; returns the deleted folders."""
    found = list_checkpoints(output_dir)
    doomed = [p for _, p in found[: max(0, len(found) - keep)]]
    for path in doomed:
        shutil.rmtree(path)
    return doomed


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
