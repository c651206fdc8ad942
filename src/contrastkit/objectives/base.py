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
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from contrastkit.objectives.reducers import LossParts, RowReducer, combine_parts, row_parts
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
    HEADS = "heads"  # (views: (C, 2, n, d') per projection head)
    GROUPS = "groups"  # (queries (n, d), positives (n, P, d), mask, negatives (n, K, d))
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

    @classmethod
    def make_temperature(
        cls, temperature: float | Temperature | None, *, learnable: bool, max_scale: float | None = None
    ) -> Temperature:
        """``temperature`` as a :class:`Temperature` (a ready one as given; None: ``info.default_temperature``)."""
        if isinstance(temperature, Temperature):
            return temperature
        tau = cls.info.default_temperature if temperature is None else temperature
        if tau is None:
            raise TypeError(f"{cls.info.name}: no temperature given and the objective has no default")
        return Temperature(float(tau), learnable=learnable, max_scale=max_scale)


class ScaledObjective(Objective):
    """Shared state of objectives with logits ``L = S * scale (+ bias) (+ B)`` and a row reducer.

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

    def loss_factor(self) -> float:
        """A constant multiplying the reduced loss (SupCon's ``tau / base_tau``); 1 by default."""
        return 1.0

    def prepare_targets(self, targets: Targets) -> Targets:
        """Hook for objectives that rewrite targets before reduction (Rand1LH draws its positive)."""
        return targets

    def logits(self, S: Tensor, B: Tensor | None = None) -> Tensor:
        """``L = S * scale (+ bias) (+ B)``."""
        L = S * self.scale().to(S.dtype)
        bias = self.logit_bias()
        if bias is not None:
            L = L + bias.to(S.dtype)
        return L if B is None else L + B

    def reduce(self, S: Tensor, targets: Targets) -> Tensor:
        """Dense loss of ``S`` (A, C) under already-prepared ``targets`` (both directions if symmetric)."""
        return combine_parts(self.parts(S, targets)) * self.loss_factor()

    def parts(self, S: Tensor, targets: Targets) -> list[LossParts]:
        """Per direction (two if symmetric), the sum of kept row losses and the kept count (dense)."""
        parts = [self.one_direction(S, targets)]
        if self.symmetric:
            parts.append(self.one_direction(S.T, targets.transpose()))
        return parts

    def one_direction(self, S: Tensor, targets: Targets) -> LossParts:
        """Sum of kept row losses and kept count of one direction: rows of ``S`` against its columns."""
        W, M, B = targets.block(dtype=S.dtype, device=S.device)
        return row_parts(self.reducer.rows(self.logits(S, B), W, M))


class MatrixObjective(ScaledObjective):
    """An objective of ``(S, targets)``: logits, a row reducer, mean over kept rows."""

    def forward(self, S: Tensor, targets: Targets) -> Tensor:
        """Scalar loss for similarity ``S`` (A, C) and ``targets`` of the same shape."""
        if tuple(S.shape) != targets.shape:
            raise ValueError(f"{self.info.name}: S has shape {tuple(S.shape)} but targets have {targets.shape}")
        return self.reduce(S, self.prepare_targets(targets))


class ViewMatrixObjective(ScaledObjective):
    """Views in; ``matrix(views)`` builds (anchors, candidates, targets); a row reducer out.

    ``forward(views)`` is the dense computation ``reduce(anchors @
    candidates^T, targets)``. Because the objective is one matrix and one
    reducer, ``ContrastiveLoss(name, tile_size=...)(views)`` computes it
    exactly with the tiled engine. Views are l2-normalised by the caller.
    """

    def matrix(self, views: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor, Targets]:
        """(anchors (A, d), candidates (C, d), targets (A, C)) for ``views`` and, where taken, per-row ``labels``.

        An objective that takes no labels raises TypeError when given some
        (:meth:`refuse_labels`); one may take further objective-specific inputs after ``labels``.
        """
        raise NotImplementedError

    def refuse_labels(self, labels: Tensor | None) -> None:
        """TypeError when ``labels`` are passed to an objective of views only."""
        if labels is not None:
            raise TypeError(f"{self.info.name} takes views only, not labels")

    def forward(self, views: Tensor, *extra: Any) -> Tensor:
        anchors, candidates, targets = self.matrix(views, *extra)
        return self.reduce(anchors @ candidates.T, self.prepare_targets(targets))


def zero_loss(like: Tensor) -> Tensor:
    """A 0-d zero that keeps ``like``'s graph (for batches where no row counts)."""
    return (like * 0).sum() if like.requires_grad else torch.zeros((), dtype=like.dtype, device=like.device)
