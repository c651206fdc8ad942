"""AdamW parameter groups and the learning-rate schedule (warmup, then constant / linear / cosine).

Example::

    >>> import torch
    >>> from contrastkit.training.config import OptimConfig
    >>> model = torch.nn.Linear(4, 2)
    >>> opt = build_optimizer(OptimConfig(lr=1e-3), model, None)
    >>> sched = LRSchedule(OptimConfig(lr=1e-3, warmup_steps=2, schedule="linear"), total_steps=10)
    >>> [round(sched.factor(s), 2) for s in range(4)]
    [0.5, 1.0, 1.0, 0.88]
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.distributed.tensor import DTensor

from contrastkit.objectives.temperature import clamp_temperatures
from contrastkit.training.config import OptimConfig


@dataclass(frozen=True)
class ParamGroups:
    """Trainable parameters split by role: decayed weights, undecayed (biases, norms), temperature-like."""

    decay: list[nn.Parameter]
    no_decay: list[nn.Parameter]
    loss: list[nn.Parameter]


def split_parameters(model: nn.Module, loss: nn.Module | None) -> ParamGroups:
    """Model parameters with ``ndim >= 2`` are decayed, the rest (biases, norm scales) are not; the loss's own.

    Frozen parameters (``requires_grad=False``) are left out. A parameter
    shared between model and loss is counted once, in the model.
    """
    seen: set[int] = set()
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    loss_params: list[nn.Parameter] = []
    for p in model.parameters():
        if p.requires_grad and id(p) not in seen:
            seen.add(id(p))
            (decay if p.ndim >= 2 else no_decay).append(p)
    if loss is not None:
        for p in loss.parameters():
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                loss_params.append(p)
    return ParamGroups(decay, no_decay, loss_params)


def build_optimizer(config: OptimConfig, model: nn.Module, loss: nn.Module | None) -> torch.optim.AdamW:
    """AdamW over ``model`` and ``loss`` parameters (e.g. a learnable temperature) in up to three groups.

    Groups: ``decay`` (``weight_decay``), ``no_decay`` (0), ``loss`` (0, at
    ``temperature_lr`` or ``lr``). Each group records its base rate as
    ``initial_lr``; :class:`LRSchedule` scales it. The fused kernel is used
    where :func:`fused_supported` says it can be. After each step the loss's
    capped learnable temperatures are clamped back to their cap
    (:func:`~contrastkit.objectives.temperature.clamp_temperatures`).
    """
    groups = split_parameters(model, loss)
    spec = [
        ("decay", groups.decay, config.weight_decay, config.lr),
        ("no_decay", groups.no_decay, 0.0, config.lr),
        ("loss", groups.loss, 0.0, config.temperature_lr or config.lr),
    ]
    param_groups = [
        {"name": name, "params": params, "weight_decay": wd, "lr": lr, "initial_lr": lr}
        for name, params, wd, lr in spec
        if params
    ]
    if not param_groups:
        raise ValueError("nothing to train: the model and the loss have no parameter with requires_grad=True")
    fused = fused_supported([p for _, params, _, _ in spec for p in params])
    optimizer = torch.optim.AdamW(param_groups, lr=config.lr, betas=config.betas, eps=config.eps, fused=fused)
    if loss is not None:  # a capped learnable temperature is clamped back after each step, as open_clip does
        optimizer.register_step_post_hook(functools.partial(_clamp_after_step, loss))
    return optimizer


def _clamp_after_step(loss: nn.Module, *_: object) -> None:
    clamp_temperatures(loss)


def fused_supported(params: list[nn.Parameter]) -> bool:
    """Whether the fused AdamW kernel takes ``params``: floating point, all on CPU or all on one CUDA device.

    The fused step is one kernel over every tensor instead of a Python loop
    per parameter (about 2x faster on CPU for MiniLM); its arithmetic is
    AdamW's, rounding aside.
    """
    devices = {p.device for p in params}
    if len(devices) != 1 or not all(p.is_floating_point() for p in params):
        return False
    return next(iter(devices)).type in ("cpu", "cuda")


def warmup_steps(config: OptimConfig, total_steps: int) -> int:
    """``warmup_steps``, or ``ceil(warmup_ratio * total_steps)`` when it is 0."""
    if config.warmup_steps:
        return config.warmup_steps
    return math.ceil(config.warmup_ratio * total_steps)


class LRSchedule:
    """The learning-rate factor of optimizer step ``s`` (0-based) out of ``total_steps``.

    * warmup, ``s < W``: ``(s + 1) / W`` (the first step is not wasted at 0);
    * then, with ``p = (s - W) / (total_steps - W)`` in [0, 1) and ``m = min_lr_ratio``:
      ``constant`` 1; ``linear`` ``1 - p (1 - m)``; ``cosine`` ``m + (1 - m)(1 + cos(pi p)) / 2``.

    The factor is a pure function of the step, so the schedule's whole state
    is the step counter that the checkpoint already holds. :meth:`apply` sets
    every group's ``lr`` to ``initial_lr * factor(s)``.
    """

    def __init__(self, config: OptimConfig, total_steps: int) -> None:
        if total_steps < 1:
            raise ValueError(f"total_steps must be >= 1, got {total_steps}")
        self.kind = config.schedule
        self.min_ratio = config.min_lr_ratio
        self.total_steps = total_steps
        self.warmup = min(warmup_steps(config, total_steps), total_steps)

    def factor(self, step: int) -> float:
        if step < self.warmup:
            return (step + 1) / self.warmup
        if self.kind == "constant":
            return 1.0
        p = (step - self.warmup) / max(1, self.total_steps - self.warmup)
        p = min(max(p, 0.0), 1.0)
        if self.kind == "linear":
            return 1.0 - p * (1.0 - self.min_ratio)
        return self.min_ratio + (1.0 - self.min_ratio) * 0.5 * (1.0 + math.cos(math.pi * p))

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> float:
        """Set each group's ``lr`` for step ``step``; returns the factor."""
        factor = self.factor(step)
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor
        return factor

    def state_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "warmup": self.warmup, "total_steps": self.total_steps}


def clip_gradients(optimizer: torch.optim.Optimizer, max_norm: float | None) -> float:
    """The global l2 norm of the optimizer's gradients, after clipping them to ``max_norm`` (None: no clipping).

    A non-finite norm is returned as is (the caller skips the step).
    """
    params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if any(isinstance(p.grad, DTensor) for p in params):
        return _clip_sharded([p.grad for p in params if p.grad is not None], max_norm)
    if max_norm is not None:
        return float(torch.nn.utils.clip_grad_norm_(params, max_norm))
    return float(torch.nn.utils.get_total_norm([p.grad for p in params]))


def _clip_sharded(grads: list[Tensor], max_norm: float | None) -> float:
    """:func:`clip_gradients` when some gradients are FSDP shards (DTensors) and others plain (the loss's).

    Each kind's norm is taken apart (a DTensor norm is completed over ranks),
    then combined; both kinds are scaled by the same clipping factor.
    """
    kinds = [[g for g in grads if isinstance(g, DTensor) == sharded] for sharded in (True, False)]
    norms = []
    for kind in kinds:
        if kind:
            norm = torch.nn.utils.get_total_norm(kind)
            norms.append(float(norm.full_tensor() if isinstance(norm, DTensor) else norm))
    total = math.sqrt(sum(n * n for n in norms))
    if max_norm is not None and math.isfinite(total):
        factor = min(1.0, max_norm / (total + 1e-6))
        for g in grads:
            g.mul_(factor)
    return total
