"""Non-finite steps: skip them, count them, stop the run when too many come in a row.

A step is *bad* when its loss or its gradient norm is NaN or infinite, or
when its update made a weight (or an optimizer moment) NaN or infinite, as
a huge learning rate does with finite gradients. The loop then applies no
update (gradients are dropped; an update already applied is undone from the
:class:`UpdateSnapshot` taken just before it, so the weights, the optimizer
and the queue are as before the step; no checkpoint is written), logs the
step as skipped and moves on to the next batch. ``max_bad_steps`` bad steps
in a row raise :class:`TrainingDivergedError`; the last checkpoint on disk
is the last good one. :func:`nonfinite` is the one fused check used after
each update and by every writer of weights (checkpoints, ``final/``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor


class TrainingDivergedError(RuntimeError):
    """Too many consecutive bad steps, or a run in which no step made an update."""


class NonFiniteWeightsError(RuntimeError):
    """A writer was asked to save a NaN or infinite tensor (a bug upstream: the loop never keeps such weights)."""


def _local(tensor: Tensor) -> Tensor:
    """The tensor itself, or a DTensor's local shard (FSDP)."""
    to_local = getattr(tensor, "to_local", None)
    return to_local() if callable(to_local) else tensor


def tensor_norms(tensors: Sequence[Tensor]) -> list[float]:
    """Each tensor's 2-norm as a float (0.0 for integer or empty tensors): ``torch._foreach_norm`` per
    (device, dtype) group, one host sync per group. NaN or infinite whenever an element is (or when the sum
    of squares overflows on huge finite values). Under FSDP, of this process's shards."""
    norms = [0.0] * len(tensors)
    groups: dict[tuple[torch.device, torch.dtype], list[tuple[int, Tensor]]] = {}
    for i, t in enumerate(tensors):
        local = _local(t).detach()
        if local.is_floating_point() and local.numel():
            groups.setdefault((local.device, local.dtype), []).append((i, local))
    for group in groups.values():
        values = torch.stack(torch._foreach_norm([t for _, t in group])).double().tolist()
        for (i, _), value in zip(group, values, strict=True):
            norms[i] = value
    return norms


def nonfinite(tensors: Sequence[Tensor], norms: Sequence[float] | None = None) -> list[int]:
    """Indices of the floating-point ``tensors`` holding a NaN or an infinity.

    One fused pass (:func:`tensor_norms`, or the ``norms`` already computed); a norm that is not finite is
    confirmed element-wise before a tensor is named, since a sum of squares can overflow on huge but
    finite values (the exact max-abs norm is ~40x slower on CPU). Integer tensors are always finite.
    """
    norms = tensor_norms(tensors) if norms is None else norms
    return [i for i, n in enumerate(norms) if not math.isfinite(n) and not bool(_local(tensors[i]).isfinite().all())]


def nonfinite_names(named: Mapping[str, Any]) -> list[str]:
    """The names of the floating-point tensors in ``named`` holding a NaN or an infinity (nested dicts and lists
    of an optimizer state are searched, named by their dotted path)."""
    flat: dict[str, Tensor] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Tensor):
            flat[prefix] = value
        elif isinstance(value, Mapping):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        elif isinstance(value, list | tuple):
            for k, v in enumerate(value):
                walk(f"{prefix}.{k}" if prefix else str(k), v)

    walk("", named)
    names = list(flat)
    return [names[i] for i in nonfinite([flat[n] for n in names])]


def require_finite(named: Mapping[str, Any], what: str) -> None:
    """Raise :class:`NonFiniteWeightsError` naming the tensors of ``named`` that are not finite."""
    bad = nonfinite_names(named)
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise NonFiniteWeightsError(f"refusing to write {what}: {len(bad)} tensors hold NaN or inf ({shown})")


class UpdateSnapshot:
    """Undo for an update that went non-finite: the parameters and optimizer state from just before it.

    :meth:`take` copies them into buffers allocated once (one fused copy), :meth:`restore` copies them
    back and drops optimizer state created by the update (AdamW creates its moments on the first step),
    so that after ``restore`` the optimizer's next step is exactly the one it would have made had the
    undone step never run. :meth:`updated_finite` checks every parameter and optimizer tensor after the
    step with one fused pass and keeps each group's largest parameter norm.

    The copy costs about as much as AdamW's own step, so :meth:`needed` skips it when the coming update
    provably cannot overflow. For ``torch.optim.AdamW`` (which contrastkit builds) each element moves by at
    most ``lr * max(1 / sqrt((1 - b2) (1 - b1^2 / b2)), 1 / (1 - b1))`` (Cauchy-Schwarz on the moments'
    sums; ``eps`` only shrinks it) after shrinking by ``1 - lr * wd``, and no element exceeds its tensor's
    2-norm from the last check; gradients below 1e18 keep the second moment's squares finite. When that
    bound stays below a tenth of the parameters' largest float, nothing is copied; otherwise (the first
    step, a huge learning rate, another optimizer, a restore just done) the snapshot is taken.
    """

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer
        self.taken = False
        self._sources: list[Tensor] = []
        self._buffers: list[Tensor] = []
        self._plain: dict[int, dict[str, Any]] = {}
        self._had_state: set[int] = set()
        self._group_norms: list[float] | None = None  # the largest parameter norm per group, at the last check

    def params(self) -> list[Tensor]:
        """The optimizer's parameters, in group order."""
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    def needed(self, grad_norm: float) -> bool:
        """Whether the coming update could overflow (see the class docstring), so :meth:`take` must run."""
        if type(self.optimizer) is not torch.optim.AdamW or self._group_norms is None or not grad_norm < 1e18:
            return True
        for group, largest in zip(self.optimizer.param_groups, self._group_norms, strict=True):
            b1, b2 = (float(b) for b in group["betas"])
            lr, wd = float(group["lr"]), float(group["weight_decay"])
            if not (0.0 <= b1 < 1.0 and b1 * b1 < b2 < 1.0 and lr >= 0.0 and wd >= 0.0):
                return True
            move = lr * max(1.0 / math.sqrt((1.0 - b2) * (1.0 - b1 * b1 / b2)), 1.0 / (1.0 - b1))
            limit = min((torch.finfo(p.dtype).max for p in group["params"]), default=math.inf) / 10
            if not largest * (1.0 + lr * wd) + move < limit:
                return True
        return False

    def take(self) -> None:
        """Copy the parameters and the optimizer's state (into buffers reused from step to step)."""
        sources: list[Tensor] = []
        self._plain, self._had_state = {}, set()
        for p in self.params():
            sources.append(_local(p.detach()))
            state = self.optimizer.state.get(p)
            if state:
                self._had_state.add(id(p))
                self._plain[id(p)] = {k: v for k, v in state.items() if not isinstance(v, Tensor)}
                sources += [_local(v) for v in state.values() if isinstance(v, Tensor)]
        same = len(sources) == len(self._sources) and all(
            a.shape == b.shape and a.dtype == b.dtype and a.device == b.device
            for a, b in zip(sources, self._buffers, strict=True)
        )
        if not same:
            self._buffers = [torch.empty_like(t) for t in sources]
        self._sources = sources
        if sources:
            torch._foreach_copy_(self._buffers, sources)
        self.taken = True

    def skip(self) -> None:
        """No copy for this step (:meth:`needed` said the update cannot overflow)."""
        self.taken = False

    def restore(self) -> None:
        """Put back what :meth:`take` copied (the tensors updated in place by the step get their old values)."""
        if not self.taken:
            raise RuntimeError("no snapshot was taken before this update")
        for p in self.params():
            if id(p) not in self._had_state:
                self.optimizer.state.pop(p, None)
            else:
                self.optimizer.state[p].update(self._plain[id(p)])
        if self._sources:
            torch._foreach_copy_(self._sources, self._buffers)
        self._group_norms = None

    def updated_finite(self) -> bool:
        """Whether the parameters and the optimizer's tensors are all finite after the step (one fused pass)."""
        groups = [list(group["params"]) for group in self.optimizer.param_groups]
        params = [p for group in groups for p in group]
        state = [v for p in params for v in self.optimizer.state.get(p, {}).values() if isinstance(v, Tensor)]
        tensors = [*params, *state]
        norms = tensor_norms(tensors)
        finite = not nonfinite(tensors, norms)
        largest, start = [], 0
        for group in groups:
            largest.append(max(norms[start : start + len(group)], default=0.0))
            start += len(group)
        self._group_norms = largest if finite else None
        return finite


@dataclass
class BadStepGuard:
    """Counts bad steps: :meth:`record` says if a step is good; :attr:`exhausted` after ``max_bad_steps`` in a row."""

    max_bad_steps: int = 5
    streak: int = 0
    total: int = 0
    streak_steps: list[int] = field(default_factory=list)
    last_values: tuple[float, float] = (0.0, 0.0)

    last_weights_nonfinite: bool = False

    def record(self, step: int, loss: float, grad_norm: float, *, weights_finite: bool = True) -> bool:
        """True for a good step (ends any streak); False for a bad one (counted): a non-finite loss or gradient
        norm, or an update that left non-finite weights (``weights_finite=False``)."""
        if math.isfinite(loss) and math.isfinite(grad_norm) and weights_finite:
            self.streak = 0
            self.streak_steps = []
            return True
        self.streak += 1
        self.total += 1
        self.streak_steps.append(step)
        self.last_values = (loss, grad_norm)
        self.last_weights_nonfinite = not weights_finite
        return False

    @property
    def exhausted(self) -> bool:
        """Whether the current streak reached ``max_bad_steps``."""
        return self.streak >= self.max_bad_steps

    def error(self, last_checkpoint: str | None) -> TrainingDivergedError:
        """The error to raise when :attr:`exhausted`, naming the steps and the last good checkpoint."""
        loss, grad_norm = self.last_values
        where = f"the last good checkpoint is {last_checkpoint}" if last_checkpoint else "no checkpoint was written"
        values = f"loss {loss}, gradient norm {grad_norm}"
        last = f"last {values}"
        if self.last_weights_nonfinite:
            last = f"the last update made weights non-finite ({values})"
        return TrainingDivergedError(
            f"training diverged: {self.streak} consecutive steps with a non-finite loss, gradient or update "
            f"(steps {self.streak_steps[0]}-{self.streak_steps[-1]}; {last}); "
            f"{where}. Lower optim.lr, raise objective.temperature, check the data, or use train.precision=fp32."
        )

    def state_dict(self) -> dict[str, int]:
        return {"total": self.total}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.total = int(state["total"])
        self.streak = 0
        self.streak_steps = []
