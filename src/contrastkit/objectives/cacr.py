"""CACR: contrastive attraction and contrastive repulsion (``objectives.md`` section 10).

Source: "Contrastive Attraction and Contrastive Repulsion for Representation
Learning" (arXiv 2105.03746, TMLR 2023); formulas from the authors' code
(``JegZheng/CACR-SSL``, ``small_scale_experiments/losses``), which matches
the paper's conditional distributions ``pi+(x+|x) ∝ exp(t+ c) p(x+|x)`` and
``pi-(x-|x) ∝ exp(-t- c) p(x-)``.

R6 (softmax-weighted cost) on ``views`` (K, n, d), l2-normalised, with the
squared Euclidean cost ``c(z, z') = ||z - z'||^2 = 2 - 2 z.z'`` (``D = 2 - 2S``):

* attraction: for query view x and instance i, the positives are the other
  K - 1 views of i; ``w+ = softmax(t+ c)`` over them (distant positives pull
  harder); ``CA = mean_x mean_i sum_+ w+ alpha c`` (>= 0).
* repulsion: for each unordered view pair x < y, query ``z_x[i]`` and
  negatives ``z_y[j]``, j != i (one direction, cross-view only);
  ``w- = softmax_j(-t- c)`` (close negatives push harder);
  ``CR_xy = mean_i sum_j w- (-beta c)``; ``CR = mean over pairs`` (<= 0).

``L = CA + CR``. The softmax weights are not detached (code); ``detach=True``
treats them as constants. ``t+ = 0`` gives uniform attraction (alpha times
the mean squared positive distance). Not a single matrix with a row reducer:
no tiled form; call it directly.

Example::

    >>> import torch, torch.nn.functional as F
    >>> from contrastkit.objectives import cacr, get
    >>> z = F.normalize(torch.randn(5, 16, 8), dim=-1)   # K = 5 views
    >>> loss = get("cacr")(z)
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from contrastkit.objectives.base import Kind, Objective, ObjectiveInfo, Status, zero_loss
from contrastkit.objectives.registry import register


class CACRTerms(NamedTuple):
    """The two 0-d terms of CACR: ``attraction`` (CA >= 0) and ``repulsion`` (CR <= 0)."""

    attraction: Tensor
    repulsion: Tensor


def _weighted_cost(logits: Tensor, cost: Tensor, mask: Tensor, detach: bool) -> Tensor:
    """``sum_c softmax_mask(logits)_c cost_c`` per row; every row of ``mask`` must be non-empty."""
    w = torch.softmax(logits.masked_fill(~mask, float("-inf")), dim=-1)
    if detach:
        w = w.detach()
    return (w * torch.where(mask, cost, torch.zeros_like(cost))).sum(-1)


def cacr_terms(
    views: Tensor,
    *,
    t_plus: float = 1.0,
    t_minus: float = 1.0,
    alpha: float = 1.0,
    beta: float = 1.0,
    detach: bool = False,
) -> CACRTerms:
    """CA and CR for ``views`` (K, n, d); see the module docstring for the formulas.

    With K < 2 there is no positive and no view pair (both terms 0); with
    n < 2 there is no negative (CR = 0).
    """
    if views.dim() != 3:
        raise ValueError(f"cacr: expected views of shape (K, n, d), got {tuple(views.shape)}")
    K, n, _ = views.shape
    if K < 2:
        return CACRTerms(zero_loss(views), zero_loss(views))
    device = views.device
    # attraction: (n, K, K) cost between views x (query) and y of the same instance
    pos_cost = 2.0 - 2.0 * torch.einsum("xid,yid->ixy", views, views)
    others = ~torch.eye(K, dtype=torch.bool, device=device).expand(n, K, K)
    ca_rows = _weighted_cost(t_plus * pos_cost, pos_cost, others, detach)  # (n, K)
    attraction = alpha * ca_rows.mean()
    if n < 2:
        return CACRTerms(attraction, zero_loss(views))
    # repulsion: one direction per unordered pair x < y, cross-view negatives j != i
    x_idx, y_idx = torch.triu_indices(K, K, offset=1, device=device)
    neg_cost = 2.0 - 2.0 * torch.bmm(views[x_idx], views[y_idx].transpose(1, 2))  # (pairs, n, n)
    not_self = ~torch.eye(n, dtype=torch.bool, device=device).expand_as(neg_cost)
    cr_rows = _weighted_cost(-t_minus * neg_cost, neg_cost, not_self, detach)  # (pairs, n)
    repulsion = -beta * cr_rows.mean()
    return CACRTerms(attraction, repulsion)


@register
class CACR(Objective):
    """CACR: ``L = CA + CR`` (:func:`cacr_terms`) on ``views`` (K, n, d), l2-normalised.

    Args:
        t_plus: attraction temperature ``t+`` (default 1; 0 = uniform weights).
        t_minus: repulsion temperature ``t-`` (default 1).
        alpha: attraction weight (default 1).
        beta: repulsion weight (default 1).
        detach: treat the softmax weights as constants (default False, as in
            the official code).
    """

    info = ObjectiveInfo(
        name="cacr",
        title="CACR (contrastive attraction and contrastive repulsion)",
        status=Status.CODE,
        citation="Zheng et al., Contrastive Attraction and Contrastive Repulsion for Representation Learning, "
        "arXiv 2105.03746",
        kind=Kind.VIEWS,
        inputs="views (K, n, d), K >= 2, l2-normalised (code: K = 5)",
        reducer="R6",
        section="10",
        default_temperature=None,
        notes="No logit temperature: t+ and t- scale the cost inside the softmax weights. Cost computed as "
        "2 - 2 z.z' (equal to ||z - z'||^2 on unit vectors). Softmax weights not detached by default (code). "
        "CR uses one direction per view pair and cross-view negatives only. The debiased and RBF-cost "
        "variants of the code are not implemented.",
    )

    def __init__(
        self,
        *,
        t_plus: float = 1.0,
        t_minus: float = 1.0,
        alpha: float = 1.0,
        beta: float = 1.0,
        detach: bool = False,
    ) -> None:
        super().__init__()
        self.t_plus, self.t_minus = t_plus, t_minus
        self.alpha, self.beta = alpha, beta
        self.detach = detach

    def terms(self, views: Tensor) -> CACRTerms:
        """CA and CR separately."""
        return cacr_terms(
            views, t_plus=self.t_plus, t_minus=self.t_minus, alpha=self.alpha, beta=self.beta, detach=self.detach
        )

    def forward(self, views: Tensor) -> Tensor:
        """Scalar loss ``CA + CR`` for ``views`` (K, n, d)."""
        ca, cr = self.terms(views)
        return ca + cr
