"""Checkpoint merging: several fine-tunes of one base model into one model folder.

:func:`merge_folders` reads sentence-transformers (or plain Hugging Face)
folders whose weights are safetensors, combines every floating-point tensor
with one of the methods below, and writes a new folder that keeps everything
else (tokenizer, pooling, normalisation, prompts, ``modules.json``) from the
*first* model. Notation: ``theta_k`` is model k's tensor (k = 1..K),
``theta_0`` the base (pre-trained) model's and ``tau_k = theta_k - theta_0``
its task vector; all operations are element-wise.

* ``uniform`` (a model soup; Wortsman et al., 2022, arXiv 2203.05482):
  ``mean_k theta_k``. Needs no base.
* ``task-arithmetic`` (Ilharco et al., 2023, arXiv 2212.04089):
  ``theta_0 + scale * sum_k tau_k``; ``scale`` defaults to ``1/K`` (which
  makes it the uniform soup; the paper tunes it on validation data).
* ``ties`` (Yadav et al., 2023, arXiv 2306.01708): trim each ``tau_k`` to
  its ``density`` fraction of largest magnitudes (per tensor here; the paper
  trims the whole task vector), elect a sign per element as the sign of the
  sum of the trimmed vectors, average only the trimmed values that agree
  with it (the disjoint mean; 0 where none does), and add
  ``scale * that`` (``scale`` default 1) to ``theta_0``.
* ``delta-guided`` (CoDiEmb, Zhang et al., 2025, arXiv 2508.11442, section
  2.4 "model fusion"): per-parameter merging weights from each checkpoint's
  deviation from the pre-trained initialisation,
  ``w_k = |tau_k| / sum_j |tau_j|`` and ``theta = sum_k w_k theta_k``
  (uniform weights where no checkpoint moved). The paper describes the
  weights as computed element-wise from ``|theta_k - theta_0|`` and
  normalised over the checkpoints; the normalisation written here (linear
  in the magnitude) is this module's reading, unverified against the
  authors' code, which does not ship the fusion step.

Merging a model with itself gives the model back under every method (for
``ties`` at ``density=1``: trimming drops small updates by design). Every
model (and the base) must have the same safetensors files, tensor names,
shapes and dtypes and the same architecture (``config.json``'s
``model_type`` and ``architectures``); the first difference is reported with
both folders and the tensor (the base may hold extra tensors, such as a
``position_ids`` buffer older transformers saved: they are ignored). Non-floating tensors (token-type or position
ids) must be equal across models and are copied. The folder is written
atomically (a temporary sibling renamed into place), and a merged tensor
that is not finite stops the merge before anything is written.

Example::

    from contrastkit.training.merge import merge_folders
    merge_folders(["runs/sts/final", "runs/ir/final"], "runs/merged",
                  method="delta-guided", base="all-MiniLM-L6-v2")
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

import torch

from contrastkit.encoders.auto import resolve_model_path
from contrastkit.encoders.io import ModelFolderError, read_json, save_atomically, write_json

MergeMethod = Literal["uniform", "task-arithmetic", "ties", "delta-guided"]
METHODS: tuple[str, ...] = get_args(MergeMethod)
NEEDS_BASE = frozenset({"task-arithmetic", "ties", "delta-guided"})
_WEIGHTS = "*.safetensors"
_PICKLES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


class MergeError(ModelFolderError):
    """Models that cannot be merged (different files, tensors or architecture); the message names both folders."""


@dataclass(frozen=True)
class MergeSettings:
    """A merge method and its knobs (validated on construction).

    Args:
        method: one of :data:`METHODS`.
        scale: the task-vector scale (task-arithmetic: default ``1/K``; ties: default 1).
        density: the fraction of each task vector ties keeps, in (0, 1].
    """

    method: MergeMethod
    scale: float | None = None
    density: float = 0.2

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown merge method {self.method!r}; expected one of {', '.join(METHODS)}")
        if not 0 < self.density <= 1:
            raise ValueError(f"density must be in (0, 1], got {self.density}")
        if self.scale is not None and not torch.isfinite(torch.tensor(self.scale)):
            raise ValueError(f"scale must be finite, got {self.scale}")


# --------------------------------------------------------------------------- the methods (one tensor)


def delta_weights(tensors: Sequence[torch.Tensor], base: torch.Tensor) -> torch.Tensor:
    """CoDiEmb's per-element weights ``|tau_k| / sum_j |tau_j|`` as a (K, *shape) tensor; 1/K where nothing moved."""
    deltas = torch.stack([(t - base).abs() for t in tensors])
    total = deltas.sum(dim=0, keepdim=True)
    uniform = torch.full_like(deltas, 1.0 / len(tensors))
    return torch.where(total > 0, deltas / total.clamp_min(torch.finfo(deltas.dtype).tiny), uniform)


def trim(delta: torch.Tensor, density: float) -> torch.Tensor:
    """``delta`` with all but its ``ceil(density * n)`` largest-magnitude entries set to 0 (ties keep the first)."""
    n = delta.numel()
    keep = max(1, int(torch.tensor(density * n).ceil().item()))
    if keep >= n:
        return delta.clone()
    flat = delta.flatten()
    top = flat.abs().topk(keep).indices
    out = torch.zeros_like(flat)
    out[top] = flat[top]
    return out.view_as(delta)


def ties_delta(deltas: Sequence[torch.Tensor], density: float) -> torch.Tensor:
    """TIES' merged task vector: trim each, elect the sign of the sum, mean of the agreeing trimmed values."""
    trimmed = torch.stack([trim(d, density) for d in deltas])
    sign = torch.sign(trimmed.sum(dim=0))
    agree = (torch.sign(trimmed) == sign) & (trimmed != 0)
    count = agree.sum(dim=0)
    total = (trimmed * agree).sum(dim=0)
    return torch.where(count > 0, total / count.clamp_min(1), torch.zeros_like(total))


def merge_tensor(tensors: Sequence[torch.Tensor], base: torch.Tensor | None, settings: MergeSettings) -> torch.Tensor:
    """One merged floating-point tensor (computed in at least float32, returned in the inputs' dtype)."""
    dtype = tensors[0].dtype
    work = torch.float64 if dtype == torch.float64 else torch.float32
    xs = [t.to(work) for t in tensors]
    b = base.to(work) if base is not None else None
    method = settings.method
    if method == "uniform":
        out = torch.stack(xs).mean(dim=0)
    elif b is None:
        raise ValueError(f"merge method {method!r} needs the base model (--base)")
    elif method == "task-arithmetic":
        scale = settings.scale if settings.scale is not None else 1.0 / len(xs)
        out = b + scale * torch.stack([x - b for x in xs]).sum(dim=0)
    elif method == "ties":
        scale = settings.scale if settings.scale is not None else 1.0
        out = b + scale * ties_delta([x - b for x in xs], settings.density)
    else:  # delta-guided
        out = (delta_weights(xs, b) * torch.stack(xs)).sum(dim=0)
    return out.to(dtype)


# --------------------------------------------------------------------------- folders


def weight_files(folder: Path) -> list[Path]:
    """The safetensors files under ``folder`` (relative, sorted); refuses pickle weights and a folder with none."""
    pickled = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.suffix in _PICKLES)
    if pickled:
        raise MergeError(f"{folder}: pickle weight files ({', '.join(pickled)}); merging reads safetensors only")
    files = sorted(p.relative_to(folder) for p in folder.rglob(_WEIGHTS))
    if not files:
        raise MergeError(f"{folder}: no *.safetensors weights to merge")
    return files


def architecture(folder: Path, files: Sequence[Path]) -> dict[str, object]:
    """``model_type`` and ``architectures`` from the ``config.json`` beside each weight file."""
    out: dict[str, object] = {}
    for rel in files:
        cfg = folder / rel.parent / "config.json"
        if cfg.is_file():
            data = read_json(cfg)
            if isinstance(data, dict):
                out[str(rel.parent / "config.json")] = {k: data.get(k) for k in ("model_type", "architectures")}
    return out


def _load(folder: Path, rel: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(folder / rel))
    except Exception as err:  # safetensors raises its own error types for a damaged file
        raise MergeError(f"{folder / rel}: cannot read the safetensors file ({type(err).__name__}: {err})") from None


def check_compatible(
    first: Path,
    other: Path,
    a: dict[str, torch.Tensor],
    b: dict[str, torch.Tensor],
    rel: Path,
    *,
    extra_ok: bool = False,
) -> None:
    """Raise :class:`MergeError` at the first tensor name, shape or dtype in which ``b`` differs from ``a``.

    ``extra_ok``: ``b`` (a base model) may hold tensors ``a`` lacks, e.g. a ``position_ids`` buffer that
    older transformers versions saved and newer ones do not.
    """
    where = f"{first} and {other} cannot be merged: {rel}"
    for name in sorted(set(a) | (set() if extra_ok else set(b))):
        if name not in b or name not in a:
            holder, lacking = (first, other) if name not in b else (other, first)
            raise MergeError(f"{where}: tensor {name!r} is in {holder} but not in {lacking}")
        if a[name].shape != b[name].shape or a[name].dtype != b[name].dtype:
            raise MergeError(
                f"{where}: tensor {name!r} is {tuple(a[name].shape)} {a[name].dtype} in {first} "
                f"but {tuple(b[name].shape)} {b[name].dtype} in {other}"
            )


def _check_layout(first: Path, files: list[Path], others: Sequence[Path]) -> None:
    arch = architecture(first, files)
    for other in others:
        theirs = weight_files(other)
        if theirs != files:
            raise MergeError(
                f"{first} and {other} cannot be merged: weight files differ "
                f"({', '.join(map(str, files))} vs {', '.join(map(str, theirs))})"
            )
        other_arch = architecture(other, theirs)
        for key in sorted(set(arch) & set(other_arch)):
            if arch[key] != other_arch[key]:
                raise MergeError(
                    f"{first} and {other} cannot be merged: different architecture in {key} "
                    f"({arch[key]} vs {other_arch[key]})"
                )


def merge_state(
    models: Sequence[dict[str, torch.Tensor]],
    base: dict[str, torch.Tensor] | None,
    settings: MergeSettings,
    *,
    where: str = "",
) -> dict[str, torch.Tensor]:
    """Merge compatible state dicts tensor by tensor; non-floating tensors must agree and are copied.

    Raises ValueError naming the tensor when a result is not finite or integer tensors differ.
    """
    out: dict[str, torch.Tensor] = {}
    for name, first in models[0].items():
        tensors = [m[name] for m in models]
        if not first.is_floating_point():
            if any(not torch.equal(first, t) for t in tensors[1:]):
                raise MergeError(f"{where}tensor {name!r} is not floating-point and differs between the models")
            out[name] = first.clone()
            continue
        merged = merge_tensor(tensors, None if base is None else base[name], settings)
        if not torch.isfinite(merged).all():
            raise MergeError(f"{where}merged tensor {name!r} has non-finite values; nothing was written")
        out[name] = merged.contiguous()
    return out


def merge_folders(
    models: Sequence[str | Path],
    out: str | Path,
    *,
    method: MergeMethod = "uniform",
    base: str | Path | None = None,
    scale: float | None = None,
    density: float = 0.2,
) -> Path:
    """Merge the model folders ``models`` into ``out`` (see the module docstring); returns ``out``.

    The first model's non-weight files (tokenizer, pooling, modules, prompts)
    are copied; every safetensors file is replaced by its merge; a
    ``merge.json`` records the method, inputs and settings. ``out`` must not
    be one of the inputs. Raises :class:`MergeError` (a ValueError) for
    incompatible or unreadable folders, a missing base, or a non-finite result.
    """
    settings = MergeSettings(method, scale=scale, density=density)
    if len(models) < 1:
        raise ValueError("merge needs at least one model folder")
    if method in NEEDS_BASE and base is None:
        raise ValueError(f"merge method {method!r} needs the pre-trained base model (--base)")
    folders = [resolve_model_path(m).absolute() for m in models]
    base_folder = resolve_model_path(base).absolute() if base is not None else None
    target = Path(out).absolute()
    for src in [*folders, *([base_folder] if base_folder else [])]:
        if target == src or src.is_relative_to(target):
            raise ValueError(f"--out {out} would overwrite the input {src}; choose another folder")
    first = folders[0]
    files = weight_files(first)
    _check_layout(first, files, folders[1:])
    if base_folder is not None:
        base_files = weight_files(base_folder)
        missing = [str(f) for f in files if f not in base_files]
        if missing:
            raise MergeError(f"{first} and base {base_folder} cannot be merged: the base lacks {', '.join(missing)}")
        arch, base_arch = architecture(first, files), architecture(base_folder, files)
        for key in sorted(set(arch) & set(base_arch)):
            if arch[key] != base_arch[key]:
                raise MergeError(
                    f"{first} and base {base_folder} cannot be merged: different architecture in {key} "
                    f"({arch[key]} vs {base_arch[key]})"
                )

    merged: dict[Path, dict[str, torch.Tensor]] = {}
    for rel in files:
        states = [_load(f, rel) for f in folders]
        for other, state in zip(folders[1:], states[1:], strict=True):
            check_compatible(first, other, states[0], state, rel)
        base_state = None
        if base_folder is not None:
            base_state = _load(base_folder, rel)
            check_compatible(first, base_folder, states[0], base_state, rel, extra_ok=True)
        merged[rel] = merge_state(states, base_state, settings, where=f"{rel}: ")

    record = {
        "method": method,
        "models": [str(f) for f in folders],
        "base": str(base_folder) if base_folder else None,
        "scale": scale,
        "density": density if method == "ties" else None,
    }

    def write(tmp: Path) -> None:
        from safetensors.torch import save_file

        shutil.copytree(first, tmp, dirs_exist_ok=True, ignore=shutil.ignore_patterns(_WEIGHTS, "merge.json"))
        for rel, state in merged.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            save_file(state, str(tmp / rel), metadata={"format": "pt"})
        write_json(tmp / "merge.json", record)

    return save_atomically(target, write)
