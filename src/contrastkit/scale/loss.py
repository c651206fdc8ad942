"""The embedding-level entry point: ``ContrastiveLoss(name, ...)(anchors, candidates, targets)``.

Builds the similarity from embeddings (cosine or dot), then calls the
objective densely, or, with ``tile_size`` set, through the exact tiled engine
(:func:`contrastkit.scale.tiled.tiled_loss`) so the A x C matrix is never held.
Symmetric objectives (CLIP) run the tiled engine once per direction.

Example::

    >>> import torch
    >>> from contrastkit import ContrastiveLoss
    >>> from contrastkit.objectives import Targets
    >>> q, d = torch.randn(8, 32), torch.randn(8, 32)
    >>> loss_fn = ContrastiveLoss("infonce", temperature=0.05, tile_size=4)
    >>> loss = loss_fn(q, d, Targets.diagonal(8))
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from contrastkit.objectives.base import Objective, ScaledObjective, ViewMatrixObjective
from contrastkit.objectives.reducers import LossParts, combine_parts
from contrastkit.objectives.registry import REGISTRY
from contrastkit.objectives.similarity import Similarity, prepare
from contrastkit.objectives.targets import Targets
from contrastkit.objectives.temperature import Temperature
from contrastkit.scale.tiled import tiled_parts


class ContrastiveLoss(nn.Module):
    """A matrix or view-matrix objective applied to embeddings, dense or tiled.

    Args:
        objective: a registry name (``contrastkit.objectives.names()``) or a
            ready :class:`MatrixObjective` / :class:`ViewMatrixObjective`.
        temperature: tau; None keeps the objective's default.
        similarity: ``"cosine"`` (default) or ``"dot"``.
        tile_size: None for the dense path; an int is the row-tile size of
            the exact tiled path (peak memory O(tile_size x C)).
        tile_cols: optional column-tile size for the tiled path (two passes,
            peak memory O(tile_size x tile_cols)).
        **hparams: the objective's other hyperparameters.

    Call a matrix objective with ``anchors`` (A, d), ``candidates`` (C, d),
    ``targets`` (A, C); a view-matrix objective (NT-Xent, SimCSE, DCL, SupCon,
    ...) with ``views`` (V, n, d) (plus labels where it takes them). Returns a
    0-d loss.
    """

    def __init__(
        self,
        objective: str | Objective,
        *,
        temperature: float | Temperature | None = None,
        similarity: Similarity | str = Similarity.COSINE,
        tile_size: int | None = None,
        tile_cols: int | None = None,
        **hparams: object,
    ) -> None:
        super().__init__()
        if isinstance(objective, str):
            if temperature is not None:
                hparams["temperature"] = temperature
            objective = REGISTRY.get(objective, **hparams)
        elif hparams or temperature is not None:
            raise TypeError("ContrastiveLoss: pass hyperparameters to the objective itself when giving an instance")
        if not isinstance(objective, ScaledObjective):
            info = objective.info
            raise TypeError(
                f"ContrastiveLoss takes matrix and view-matrix objectives; {info.name!r} takes {info.inputs}: "
                f"call contrastkit.objectives.get({info.name!r})(...) directly"
            )
        if tile_size is not None and not objective.row_separable:
            name = objective.info.name
            raise ValueError(f"objective {name!r} with these options is not row-separable; tile_size must be None")
        self.objective = objective
        self.similarity = Similarity(similarity)
        self.tile_size = tile_size
        self.tile_cols = tile_cols

    def forward(self, *inputs: Any) -> Tensor:
        """The loss: dense (the objective's own forward) or tiled (mean over kept rows per direction).

        ``inputs``: ``(anchors, candidates, targets)`` for a matrix objective; ``(views, [labels, ...])`` for a
        view objective (its :meth:`~contrastkit.objectives.base.ViewMatrixObjective.matrix` arguments).
        """
        objective = self.objective
        if self.tile_size is None:
            if isinstance(objective, ViewMatrixObjective):
                return objective(prepare(_views(inputs, objective), self.similarity), *inputs[1:])
            a, c, targets = self._matrix(inputs)
            return objective(a @ c.T, targets)
        return combine_parts(self.parts(*inputs)) * objective.loss_factor()

    def pairs(self, anchors: Tensor, candidates: Tensor, targets: Targets) -> Tensor:
        """The loss of a matrix objective: ``anchors`` (A, d), ``candidates`` (C, d), ``targets`` (A, C); 0-d.

        The typed form of ``self(anchors, candidates, targets)``; a view objective is a TypeError.
        """
        if isinstance(self.objective, ViewMatrixObjective):
            name = self.objective.info.name
            raise TypeError(f"{name!r} is a view objective: call .views(views, labels) instead of .pairs(...)")
        return self(anchors, candidates, targets)

    def views(self, views: Tensor, labels: Tensor | None = None) -> Tensor:
        """The loss of a view objective: ``views`` (V, n, d) and optional ``labels`` (n,); 0-d.

        The typed form of ``self(views[, labels])``; a matrix objective is a TypeError.
        """
        if not isinstance(self.objective, ViewMatrixObjective):
            name = self.objective.info.name
            raise TypeError(f"{name!r} is a matrix objective: call .pairs(anchors, candidates, targets) instead")
        return self(views) if labels is None else self(views, labels)

    def parts(self, *inputs: Any, reverse: tuple[Tensor, Tensor, Targets] | None = None) -> list[LossParts]:
        """Per direction, the sum of kept row losses and the kept count (before the mean and ``loss_factor``).

        ``combine_parts(parts) * objective.loss_factor()`` is the loss; a
        distributed caller divides each total by the count summed over ranks.
        For a symmetric objective the second direction is by default
        ``(candidates, anchors, targets^T)``; a distributed caller passes
        ``reverse=(local candidates, gathered anchors, their targets)`` instead,
        since its rows must be the rank's own candidates.
        """
        objective = self.objective
        a, c, targets = self._matrix(inputs)
        if self.tile_size is None and reverse is None:
            return objective.parts(a @ c.T, objective.prepare_targets(targets))
        directions = [(a, c, objective.prepare_targets(targets))]
        if objective.symmetric:
            if reverse is None:
                directions.append((c, a, directions[0][2].transpose()))
            else:
                ra, rc, rt = reverse
                directions.append((prepare(ra, self.similarity), prepare(rc, self.similarity), rt))
        elif reverse is not None:
            raise ValueError(f"reverse= is only for symmetric objectives; {objective.info.name!r} is not")
        return [self._direction(*d) for d in directions]

    def _direction(self, a: Tensor, c: Tensor, targets: Targets) -> LossParts:
        if targets.shape != (a.shape[0], c.shape[0]):
            raise ValueError(f"targets shape {targets.shape} != (A, C) = ({a.shape[0]}, {c.shape[0]})")
        if self.tile_size is None:
            return self.objective.one_direction(a @ c.T, targets)
        return self._tiled(a, c, targets, self.tile_size)

    def _matrix(self, inputs: tuple[Any, ...]) -> tuple[Tensor, Tensor, Targets]:
        objective = self.objective
        if isinstance(objective, ViewMatrixObjective):
            a, c, targets = objective.matrix(prepare(_views(inputs, objective), self.similarity), *inputs[1:])
        else:
            anchors, candidates, targets = _pair_inputs(inputs, objective)
            a, c = prepare(anchors, self.similarity), prepare(candidates, self.similarity)
        if targets.shape != (a.shape[0], c.shape[0]):
            raise ValueError(f"targets shape {targets.shape} != (A, C) = ({a.shape[0]}, {c.shape[0]})")
        return a, c, targets

    def _tiled(self, a: Tensor, c: Tensor, targets: Targets, tile_rows: int) -> LossParts:
        objective = self.objective
        return tiled_parts(
            a,
            c,
            targets,
            objective.reducer,
            scale=objective.scale(),
            bias=objective.logit_bias(),
            tile_rows=tile_rows,
            tile_cols=self.tile_cols,
        )

    def extra_repr(self) -> str:
        return f"{self.objective.info.name}, similarity={self.similarity.value}, tile_size={self.tile_size}"


def _views(inputs: tuple[Any, ...], objective: Objective) -> Tensor:
    """The views tensor a view objective takes first; TypeError otherwise."""
    if not inputs or not isinstance(inputs[0], Tensor):
        raise TypeError(f"ContrastiveLoss({objective.info.name!r}) takes (views, ...) with views a tensor")
    return inputs[0]


def _pair_inputs(inputs: tuple[Any, ...], objective: Objective) -> tuple[Tensor, Tensor, Targets]:
    """``(anchors, candidates, targets)`` of a matrix objective; TypeError for anything else."""
    if len(inputs) == 3:
        anchors, candidates, targets = inputs
        if isinstance(anchors, Tensor) and isinstance(candidates, Tensor) and isinstance(targets, Targets):
            return anchors, candidates, targets
    raise TypeError(f"ContrastiveLoss({objective.info.name!r}) takes (anchors, candidates, targets)")
