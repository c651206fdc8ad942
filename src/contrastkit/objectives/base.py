"""What every objective declares, and the shared shape of matrix objectives.

An objective is a ``torch.nn.Module`` (it may hold a learnable temperature or
bias) whose class carries an :class:`ObjectiveInfo`: its registry name, status
in ``objectives.md`` (``paper``, ``code``, ``partial``, ``unavailable``),
citation, the inputs it takes and whether it is row-separable (then the tiled
engine can compute it exactly without the A x C matrix). Listings, docs and
tests are derived from this class data.

Matrix objectives (:class:`MatrixObjective`) are called as
``objective(S, targets)`` with a raw similarity matrix; logits are
``L = S * scale + B (+ bias)`` and a :class:`RowReducer` turns them into one
loss per row. Other kinds (views, labels, score lists, queues) document their
own ``forward``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import ClassVar

import torch
from torch import Tensor, nn

from contrastkit.objectives.reducers import RowReducer, reduce_rows
from contrastkit.objectives.targets import Targets
from contrastkit.objectives.temperature import Temperature, as_temperature


class Status(str, Enum):
    """How far the formula was verified (``objectives.md``)."""

    PAPER = "paper"
    CODE = "code"
    PARTIAL = "partial"
    UNAVAILABLE = "unavailable"


class Kind(str, Enum):
    """Which call signature an objective has."""

    MATRIX = "matrix"  # (S: (A, C), targets: Targets)
    VIEWS = "views"  # (views: (V, n, d) unit-norm embeddings)
    LABELLED = "labelled"  # views or embeddings plus labels
    SCORES = "scores"  # (pred: (n,), gold: (n,)) pair similarities and gold scores
    QUEUE = "queue"  # (query, key, queue) MoCo-style
    HOOK = "hook"  # a documented extension point, no fixed formula


@dataclass(frozen=True)
class ObjectiveInfo:
    """Class data of an objective; see the module docstring."""

    name: str
    title: str
    status: Status
    citation: str
    kind: Kind
    inputs: str
    reducer: str
    section: str
    default_temperature: float | None = 1.0
    notes: str = ""


class Objective(nn.Module):
    """Base of every registered objective (abstract: subclasses set ``info`` and ``forward``)."""

    info: ClassVar[ObjectiveInfo]

    @property
    def row_separable(self) -> bool:
        """Whether the tiled engine can compute this objective exactly."""
        return False


class MatrixObjective(Objective):
    """An objective of ``(S, targets)``: logits ``L = S * scale + B``, a row reducer, mean over kept rows.

    Args:
        temperature: tau (float or :class:`Temperature`); defaults to the
            objective's ``info.default_temperature``.
        learnable_temperature: train ``log(1/tau)``.
    """

    symmetric: ClassVar[bool] = False

    def __init__(self, *, temperature: float | Temperature | None = None, learnable_temperature: bool = False) -> None:
        super().__init__()
        if temperature is None:
            temperature = self.info.default_temperature or 1.0
        if learnable_temperature and not isinstance(temperature, Temperature):
            temperature = Temperature(float(temperature), learnable=True)
        self.temperature = as_temperature(temperature)

    @property
    def reducer(self) -> RowReducer:
        raise NotImplementedError

    @property
    def row_separable(self) -> bool:
        return self.reducer.streamable

    def scale(self) -> Tensor:
        """The logit scale ``1 / tau`` (0-d tensor)."""
        return self.temperature.scale()

    def logit_bias(self) -> Tensor | None:
        """A scalar added to every logit (SigLIP's ``b``); None by default."""
        return None

    def prepare_targets(self, targets: Targets) -> Targets:
        """Hook for objectives that rewrite targets before reduction (Rand1LH draws its positive)."""
        return targets

    def forward(self, S: Tensor, targets: Targets) -> Tensor:  # noqa: N803 - math notation
        """Scalar loss for similarity ``S`` (A, C) and ``targets`` of the same shape."""
        if tuple(S.shape) != targets.shape:
            raise ValueError(f"{self.info.name}: S has shape {tuple(S.shape)} but targets have {targets.shape}")
        targets = self.prepare_targets(targets)
        loss = self._one_direction(S, targets)
        if self.symmetric:
            loss = 0.5 * (loss + self._one_direction(S.T, targets.transpose()))
        return loss

    def _one_direction(self, S: Tensor, targets: Targets) -> Tensor:  # noqa: N803
        W, M, B = targets.block(dtype=S.dtype, device=S.device)  # noqa: N806
        L = self.logits(S, B)  # noqa: N806
        return reduce_rows(self.reducer.rows(L, W, M))

    def logits(self, S: Tensor, B: Tensor | None = None) -> Tensor:  # noqa: N803
        """``L = S * scale (+ bias) (+ B)``."""
        L = S * self.scale().to(S.dtype)  # noqa: N806
        bias = self.logit_bias()
        if bias is not None:
            L = L + bias.to(S.dtype)  # noqa: N806
        return L if B is None else L + B


def zero_loss(like: Tensor) -> Tensor:
    """A 0-d zero that keeps ``like``'s graph (for batches where no row counts)."""
    return (like * 0).sum() if like.requires_grad else torch.zeros((), dtype=like.dtype, device=like.device)
