"""The state of a run that a checkpoint holds, and putting it back.

:class:`RunState` lists every stateful part of the loop: the encoder's and
the loss module's weights (a learnable temperature, the memory queue), the
optimizer, the sampler's position, the bad-step counter, the fp16 grad
scaler, the schedule (a pure function of the step: saved for the record)
and the random generators. :func:`save_run_state` writes them as
one atomic checkpoint (:mod:`contrastkit.training.checkpoint`) and prunes
old ones; :func:`restore_run_state` loads them back, random generators last,
so the next step draws exactly what an uninterrupted run would.
"""

from __future__ import annotations

import datetime as _dt
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from safetensors.torch import load_file
from torch import nn

from contrastkit.data.mixture import MixtureSampler
from contrastkit.data.sampler import BatchSampler
from contrastkit.scale.distributed import world
from contrastkit.training.checkpoint import Checkpoint, load_checkpoint, prune_checkpoints, save_checkpoint
from contrastkit.training.config import Config, config_dict, diff_configs
from contrastkit.training.guard import BadStepGuard
from contrastkit.training.optim import LRSchedule
from contrastkit.training.rng import capture_rng, restore_rng
from contrastkit.training.schema import ConfigError, build

if TYPE_CHECKING:
    from contrastkit.training.sharding import Sharding


@dataclass
class RunState:
    """References to the stateful parts of a run (nothing is copied).

    ``loss`` is the run's loss module: one BatchLoss, or an ``nn.ModuleList``
    of them when several datasets use different objectives. ``sampler`` is a
    MixtureSampler (its position and every dataset sampler's) for several
    datasets.
    """

    config: Config
    encoder: nn.Module
    loss: nn.Module
    optimizer: torch.optim.Optimizer
    sampler: BatchSampler | MixtureSampler
    guard: BadStepGuard
    scaler: torch.amp.GradScaler | None
    schedule: LRSchedule
    sharding: Sharding | None = None

    def modules(self) -> dict[str, nn.Module]:
        return {"model": self.encoder, "loss": self.loss}


def save_run_state(
    state: RunState, output_dir: str | Path, step: int, *, metrics: dict[str, Any] | None = None
) -> Path | None:
    """Checkpoint ``state`` at ``step`` into ``output_dir/checkpoints`` and keep the newest ``keep_checkpoints``.

    Every rank calls it (every rank's generators, and a sharded encoder's
    weights and optimizer state, are gathered first); rank 0 writes and
    returns the folder, other ranks None.
    """
    rngs = _rank_rngs()
    modules: dict[str, Any] = state.modules()
    optimizer: Any = state.optimizer
    if state.sharding is not None:
        modules["model"] = state.sharding.model_state()
        optimizer = state.sharding.optimizer_state(state.optimizer)
    if world()[0] != 0:
        return None
    loop_state = {
        "rng": rngs,
        "sampler": state.sampler.state_dict(),
        "guard": state.guard.state_dict(),
        "scaler": state.scaler.state_dict() if state.scaler is not None else {},
        "schedule": state.schedule.state_dict(),
    }
    meta = {
        "total_steps": state.schedule.total_steps,
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "metrics": metrics or {},
        "config": config_dict(state.config),
    }
    path = save_checkpoint(output_dir, Checkpoint(step, loop_state, meta), modules=modules, optimizer=optimizer)
    prune_checkpoints(output_dir, state.config.train.keep_checkpoints)
    return path


def restore_run_state(state: RunState, path: str | Path) -> tuple[int, list[str]]:
    """Load checkpoint ``path`` into ``state``; returns (step, config keys that differ from the checkpoint's).

    The random generators are restored last. A checkpoint that does not fit
    (another model, another data size), or that cannot be read, raises
    :class:`ConfigError` on ``train.resume`` with the reason. The caller
    verifies the checkpoint's files first
    (:func:`~contrastkit.training.checkpoint.verify_checkpoint`).
    """
    device = next((p.device for p in state.encoder.parameters()), torch.device("cpu"))
    try:
        if state.sharding is None:
            ckpt = load_checkpoint(path, modules=state.modules(), optimizer=state.optimizer, map_location=device)
        else:
            ckpt = load_checkpoint(path, modules={"loss": state.loss})
            model = load_file(Path(path) / "model.safetensors")
            optimizer = torch.load(Path(path) / "optimizer.pt", map_location="cpu", weights_only=True)
            state.sharding.load(model, state.optimizer, optimizer)
        state.sampler.load_state_dict(ckpt.state["sampler"])
    except (RuntimeError, ValueError, KeyError, OSError, EOFError, pickle.UnpicklingError) as err:
        # a checkpoint that does not fit the run, or (one without a manifest: not verified) does not load
        raise ConfigError("train.resume", f"cannot resume from {path}: {type(err).__name__}: {err}") from None
    state.guard.load_state_dict(ckpt.state["guard"])
    if state.scaler is not None and ckpt.state["scaler"]:
        state.scaler.load_state_dict(ckpt.state["scaler"])
    changed = _changed_keys(state.config, ckpt.meta.get("config"))
    restore_rng(_own_rng(ckpt.state["rng"]))
    return ckpt.step, changed


def _rank_rngs() -> dict[str, Any] | list[dict[str, Any]]:
    """This process's generators, or under ``torchrun`` every rank's (ranks draw differently: dropout over
    their own rows). A collective then."""
    _, size = world()
    if size == 1:
        return capture_rng()
    states: list[Any] = [None] * size
    dist.all_gather_object(states, capture_rng())
    return states


def _own_rng(saved: dict[str, Any] | list[dict[str, Any]]) -> dict[str, Any]:
    """This rank's generators from a checkpoint's: its own when the world size is the checkpoint's, else the
    first rank's (a run resumed on another number of processes continues, but not bit for bit)."""
    if isinstance(saved, dict):
        return saved
    rank, size = world()
    return saved[rank] if len(saved) == size else saved[0]


def _changed_keys(config: Config, saved: object) -> list[str]:
    if not isinstance(saved, dict):
        return []
    try:
        old = build(Config, saved)
    except ConfigError:
        warnings.warn("the checkpoint's config no longer validates; cannot compare configs", stacklevel=3)
        return []
    return [k for k in diff_configs(old, config) if k != "train.resume"]
