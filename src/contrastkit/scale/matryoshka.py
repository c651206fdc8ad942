"""Matryoshka representation learning: one loss at several truncated embedding sizes.

Kusupati et al., "Matryoshka Representation Learning" (arXiv 2205.13147),
train embeddings whose first ``m`` coordinates are themselves a good
embedding, for every ``m`` in a nested set. The loss is the weighted sum::

    L = sum_k w_k * loss_fn(E_1[..., :m_k], E_2[..., :m_k], ..., targets)

over the chosen dimensions ``m_k``. With ``similarity="cosine"`` the inner
loss (``ContrastiveLoss``) re-normalises each truncated vector, so every
prefix is scored by its own cosine; with ``"dot"`` prefixes are used as they
are. The default weights are all 1 (a plain sum, as in sentence-transformers'
``MatryoshkaLoss``).

Composes with the other scaling wrappers: it is a loss on embeddings, so it
can be GradCache's ``loss_fn`` (``lambda e: mrl(e[0], e[1], targets)``), use a
tiled ``ContrastiveLoss`` inside, or a distributed one
(``lambda a, c, t: global_parts_loss(cl.parts(a, c, t))`` on gathered
candidates).

Example::

    >>> import torch
    >>> from contrastkit import ContrastiveLoss, Targets
    >>> mrl = MatryoshkaLoss(ContrastiveLoss("infonce", temperature=0.05), dims=[64, 32, 16])
    >>> loss = mrl(torch.randn(8, 64), torch.randn(8, 64), Targets.diagonal(8))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from torch import Tensor, nn

from contrastkit.objectives.base import ViewMatrixObjective


def truncate(x: Tensor, dim: int) -> Tensor:
    """The first ``dim`` coordinates (last axis) of an embedding tensor: (n, d) or views (V, n, d)."""
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.dim() < 2:
        raise TypeError(f"MatryoshkaLoss: an embedding argument must be a floating (n, d) or (V, n, d) tensor, got "
                        f"{type(x).__name__}{tuple(x.shape) if isinstance(x, Tensor) else ''}")  # fmt: skip
    if dim > x.shape[-1]:
        raise ValueError(f"MatryoshkaLoss: dimension {dim} exceeds the embedding size {x.shape[-1]}")
    return x[..., :dim]


def embedding_positions(loss_fn: object) -> tuple[int, ...]:
    """Which arguments of ``loss_fn`` are embeddings: ``(0,)`` for a view objective's ``(views, *labels)``,
    else ``(0, 1)`` for ``(anchors, candidates, targets, ...)`` (decided by the objective's class, never by a
    tensor's dtype or rank)."""
    objective = getattr(loss_fn, "objective", None)
    return (0,) if isinstance(objective, ViewMatrixObjective) else (0, 1)


class MatryoshkaLoss(nn.Module):
    """``sum_k w_k * loss_fn(*inputs truncated to dims[k])``.

    Args:
        loss_fn: a ``ContrastiveLoss``-like callable, e.g. ``(anchors (A, d),
            candidates (C, d), targets)`` or ``(views (V, n, d), labels)``; if
            it is an ``nn.Module`` its parameters (a learnable temperature)
            belong to this module.
        dims: the truncation sizes ``m_k`` (distinct positive ints, each at
            most the embedding size d; include d itself to train the full
            embedding).
        weights: ``w_k``, one per dimension; default all 1.
        embeddings: the positions of the arguments that are embeddings, truncated
            along their last dimension (:func:`truncate`); every other argument
            (targets, labels, float soft labels included) is passed unchanged.
            Default :func:`embedding_positions` of ``loss_fn``.

    Returns a 0-d loss.
    """

    def __init__(
        self,
        loss_fn: Callable[..., Tensor],
        dims: Sequence[int],
        weights: Sequence[float] | None = None,
        *,
        embeddings: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        dims = [int(d) for d in dims]
        if not dims or any(d < 1 for d in dims) or len(set(dims)) != len(dims):
            raise ValueError(f"MatryoshkaLoss: dims must be distinct positive ints, got {dims}")
        weights = [1.0] * len(dims) if weights is None else [float(w) for w in weights]
        if len(weights) != len(dims):
            raise ValueError(f"MatryoshkaLoss: {len(weights)} weights for {len(dims)} dims")
        if any(not math.isfinite(w) or w < 0 for w in weights):
            raise ValueError(f"MatryoshkaLoss: weights must be finite and >= 0, got {weights}")
        self.loss_fn = loss_fn
        self.embeddings = frozenset(embedding_positions(loss_fn) if embeddings is None else embeddings)
        self.dims = tuple(dims)
        self.weights = tuple(weights)

    def forward(self, *inputs: object) -> Tensor:
        total: Tensor | None = None
        for dim, weight in zip(self.dims, self.weights, strict=True):
            args = (_truncated(x, dim) if i in self.embeddings else x for i, x in enumerate(inputs))
            term = weight * self.loss_fn(*args)
            total = term if total is None else total + term
        assert total is not None, "dims is non-empty (checked at construction)"
        return total

    def extra_repr(self) -> str:
        return f"dims={list(self.dims)}, weights={list(self.weights)}"


def _truncated(x: object, dim: int) -> Tensor:
    """:func:`truncate` of an argument named as an embedding; TypeError when it is not a tensor."""
    if not isinstance(x, Tensor):
        raise TypeError(f"MatryoshkaLoss: an embedding argument must be a tensor, got {type(x).__name__}")
    return truncate(x, dim)
