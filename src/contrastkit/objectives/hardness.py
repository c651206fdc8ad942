"""Temperature and hardness; alignment and uniformity (``objectives.md`` section 17).

* :func:`relative_penalty`, :class:`HardInfoNCE` (``hard_infonce``) and
  :func:`tolerance`: Wang & Liu, "Understanding the Behaviour of Contrastive
  Loss" (arXiv 2012.09740, CVPR 2021).
* :func:`alignment`, :func:`uniformity` and :class:`AlignUniform`
  (``align_uniform``): Wang & Isola, "Understanding Contrastive Representation
  Learning through Alignment and Uniformity on the Hypersphere" (arXiv
  2005.10242).

Embeddings are l2-normalised by the caller.

Example::

    >>> import torch, torch.nn.functional as F
    >>> x = F.normalize(torch.randn(16, 8), dim=-1)
    >>> bool(uniformity(x) <= 0)
    True
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from contrastkit.objectives.base import Kind, MatrixObjective, Objective, ObjectiveInfo, Status, zero_loss
from contrastkit.objectives.reducers import LossParts, RowReducer, WeightedCE
from contrastkit.objectives.registry import register
from contrastkit.objectives.targets import Targets
from contrastkit.objectives.temperature import Temperature

_WANG_LIU = "Wang and Liu, Understanding the Behaviour of Contrastive Loss, arXiv 2012.09740 (CVPR 2021)"
_WANG_ISOLA = (
    "Wang and Isola, Understanding Contrastive Representation Learning through Alignment and Uniformity "
    "on the Hypersphere, arXiv 2005.10242"
)


def relative_penalty(s_neg: Tensor, tau: float) -> Tensor:
    """Hardness-aware relative penalty ``r_i(s_ij) = softmax(s_neg / tau)_j`` over the last dimension.

    ``s_neg`` (..., K): anchor i's similarities to its negatives. For InfoNCE
    ``l_i = -log(e^{s_ii/tau} / (e^{s_ii/tau} + sum_k e^{s_ik/tau}))`` this equals
    ``|dl/ds_ij| / |dl/ds_ii|``: a Boltzmann distribution over negatives with
    temperature tau. Small tau concentrates it on the hardest negative; large
    tau makes it uniform. Read it as "which share of the push goes to j".
    """
    return torch.softmax(s_neg / tau, dim=-1)


def _top_k_negatives(S: Tensor, W: Tensor, M: Tensor, k: int) -> Tensor:
    """``M`` with only each row's ``k`` most similar negatives kept (positives untouched)."""
    neg = M & ~(W > 0)
    if k >= S.shape[1]:
        return M
    scores = S.detach().masked_fill(~neg, float("-inf"))
    top = torch.zeros_like(neg)
    top.scatter_(1, scores.topk(k, dim=1).indices, True)
    return M & ((W > 0) | (top & neg))


@register
class HardInfoNCE(MatrixObjective):
    """Wang & Liu's explicit hard contrastive loss: InfoNCE with only the top-k negatives in the denominator.

    ``forward(S (A, C), targets)``. For each row, the ``k`` negatives with the
    largest similarity ``S`` stay valid and every other negative is removed via
    ``M``; the positives and the R1 reduction are InfoNCE's. With ``k`` at
    least the number of negatives it equals ``infonce``. The selection is a
    constant of the step (no gradient through it). Not streamable: the top-k
    needs the whole row. ``k = 16`` and tau = 1.0 are placeholders, not the
    paper's values.
    """

    info = ObjectiveInfo(
        name="hard_infonce",
        title="Hard contrastive loss (top-k negatives)",
        status=Status.PAPER,
        citation=_WANG_LIU,
        kind=Kind.MATRIX,
        inputs="S (A, C) + Targets",
        reducer="R1 with M restricted to the top-k negatives",
        section="17.1",
        default_temperature=1.0,
        notes="k = 16 and tau = 1.0 are placeholder defaults (not from the paper).",
    )

    def __init__(
        self,
        *,
        temperature: float | Temperature | None = None,
        learnable_temperature: bool = False,
        k: int = 16,
    ) -> None:
        super().__init__(temperature=temperature, learnable_temperature=learnable_temperature)
        if k < 1:
            raise ValueError(f"hard_infonce: k must be >= 1, got {k}")
        self.k = int(k)

    @property
    def reducer(self) -> RowReducer:
        return WeightedCE()

    @property
    def row_separable(self) -> bool:
        return False

    def parts(self, S: Tensor, targets: Targets) -> list[LossParts]:
        W, M, B = targets.block(dtype=S.dtype, device=S.device)
        return super().parts(S, Targets(pos=W, valid=_top_k_negatives(S, W, M, self.k), bias=B))


def alignment(x: Tensor, y: Tensor, *, alpha: float = 2.0) -> Tensor:
    """``L_align = mean_i ||x_i - y_i||_2^alpha`` over positive pairs (x_i, y_i); (n, d) each. 0 for identical pairs."""
    if x.shape != y.shape or x.dim() != 2:
        raise ValueError(
            f"alignment: expected x and y of the same shape (n, d), got {tuple(x.shape)}, {tuple(y.shape)}"
        )
    sq = (x - y).pow(2).sum(-1)
    if alpha == 2:
        return sq.mean()
    return torch.linalg.vector_norm(x - y, dim=-1).pow(alpha).mean()


def uniformity(x: Tensor, *, t: float = 2.0) -> Tensor:
    """``L_uniform = log mean_{i<j} exp(-t ||x_i - x_j||^2)`` over the distinct pairs (``pdist``); (n, d).

    Always ``<= 0``; lower is more uniform. Fewer than two points gives 0
    (with a graph). Squared distances come from the Gram matrix,
    ``||x_i||^2 + ||x_j||^2 - 2 x_i . x_j`` (clamped at 0), so memory is O(n^2), not O(n^2 d).
    """
    n = x.shape[0]
    if n < 2:
        return zero_loss(x)
    norms = x.pow(2).sum(-1)
    i, j = torch.triu_indices(n, n, offset=1, device=x.device)
    sq = (norms[i] + norms[j] - 2 * (x @ x.T)[i, j]).clamp(min=0)
    return torch.logsumexp(-t * sq, dim=0) - math.log(sq.numel())


def tolerance(z: Tensor, labels: Tensor) -> Tensor:
    """Wang & Liu's tolerance: mean of ``z_i . z_j`` over the distinct same-class pairs i < j.

    ``z`` (n, d) unit-norm, ``labels`` (n,). An evaluation metric: higher means
    same-class samples sit closer (less uniformity-driven separation). Raises
    ``ValueError`` when no two samples share a class (the mean is undefined).
    """
    if z.dim() != 2 or labels.shape != (z.shape[0],):
        raise ValueError(f"tolerance: expected z (n, d) and labels (n,), got {tuple(z.shape)}, {tuple(labels.shape)}")
    same = (labels[:, None] == labels[None, :]).triu(diagonal=1)
    if not bool(same.any()):
        raise ValueError("tolerance: no same-class pair in the batch")
    return (z @ z.T)[same].mean()


@register
class AlignUniform(Objective):
    """Alignment + uniformity as a training loss: ``L_align(x, y) + lambda * (L_uniform(x) + L_uniform(y)) / 2``.

    ``forward(views (2, n, d))``: two l2-normalised views; pair i of the two
    views is a positive. Defaults ``alpha = 2``, ``t = 2``, ``lambda = 1``.
    No temperature. See :func:`alignment` and :func:`uniformity`.
    """

    info = ObjectiveInfo(
        name="align_uniform",
        title="Alignment and uniformity loss",
        status=Status.PAPER,
        citation=_WANG_ISOLA,
        kind=Kind.VIEWS,
        inputs="views (2, n, d), l2-normalised",
        reducer="metrics: mean over positive pairs + log-mean-exp over distinct pairs",
        section="17.2",
        default_temperature=None,
    )

    def __init__(self, *, alpha: float = 2.0, t: float = 2.0, uniform_weight: float = 1.0) -> None:
        super().__init__()
        self.alpha, self.t, self.uniform_weight = float(alpha), float(t), float(uniform_weight)

    def forward(self, views: Tensor) -> Tensor:
        if views.dim() != 3 or views.shape[0] != 2:
            raise ValueError(f"align_uniform: expected views of shape (2, n, d), got {tuple(views.shape)}")
        x, y = views[0], views[1]
        uniform = (uniformity(x, t=self.t) + uniformity(y, t=self.t)) / 2
        return alignment(x, y, alpha=self.alpha) + self.uniform_weight * uniform
