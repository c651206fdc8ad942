"""GroCo: learning by sorting with group ordering constraints (``objectives.md`` section 9).

Source: "Learning by Sorting: Self-supervised Learning with Group Ordering
Constraints" (arXiv 2301.02009, ICCV 2023); formulas from the authors'
``learning_by_sorting/losses/groco.py`` and the relaxed sorting networks of
Petersen et al.'s differentiable sorting.

R7 (sorting reducer) on ``views`` (V, n, d), l2-normalised, cosine similarity.
For the anchor ``z_a[i]`` (view a of image i):

1. positives: ``z_b[i]`` for b != a (m = V - 1); negatives: the same view
   a of the other images, the ``k = min(topk_neg, n - 1)`` most similar;
   with ``stop_grad`` both are detached (the gradient reaches the anchor only);
2. pre-order ``x = [negatives ascending, positives ascending]`` (part of the
   method: the relaxed network is not permutation-invariant);
3. :func:`relaxed_sort`: an odd-even transposition network with the Cauchy
   relaxation gives ``P[j, r]``, the soft probability that input j lands at
   ascending rank r (doubly stochastic);
4. ``p+_j = sum_{r >= k} P[j, r]``, ``p-_j = sum_{r < k} P[j, r]``, clipped to
   [0, 1]; loss ``0.5 [BCE(p+, t) + BCE(p-, 1 - t)]`` with ``t = 1`` on positives,
   BCE averaged over the k + m elements (log clamped at -100, as PyTorch);
5. mean over anchors (all views, all images).

Only the group order matters: the targets say which group an element belongs
to, not its rank within the group. Not row-separable (top-k, sorting): no
tiled form; call it directly.

Example::

    >>> import torch, torch.nn.functional as F
    >>> from contrastkit.objectives import groco, get
    >>> z = F.normalize(torch.randn(2, 32, 16), dim=-1)
    >>> loss = get("groco")(z)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from contrastkit.objectives.base import Kind, Objective, ObjectiveInfo, Status, zero_loss
from contrastkit.objectives.registry import register


def relaxed_sort(x: Tensor, *, steepness: float = 1.0) -> tuple[Tensor, Tensor]:
    """Relaxed odd-even transposition sort of ``x`` (..., w), ascending.

    ``w`` layers; layer l compares wires (a, a+1) with ``a = l (mod 2)``. Each
    comparator mixes with ``alpha = 1/2 + atan(steepness (x_{a+1} - x_a)) / pi``:
    ``min = alpha x_a + (1 - alpha) x_{a+1}`` goes to wire a,
    ``max = (1 - alpha) x_a + alpha x_{a+1}`` to wire a+1; the same mixing is
    applied to the columns of ``P`` (initially the identity).

    Returns the relaxed sorted values (..., w) and ``P`` (..., w, w) with
    ``P[j, r]`` the soft probability that input j lands at rank r; ``P`` is
    doubly stochastic, and a permutation matrix in the limit of infinite
    steepness.
    """
    width = x.shape[-1]
    P = torch.eye(width, dtype=x.dtype, device=x.device).expand(*x.shape, width)
    for layer in range(width):
        a = torch.arange(layer % 2, width - 1, 2, device=x.device)
        if a.numel() == 0:
            continue
        b = a + 1
        xa, xb = x[..., a], x[..., b]
        alpha = 0.5 + torch.atan(steepness * (xb - xa)) / math.pi
        x = x.clone()
        x[..., a] = alpha * xa + (1 - alpha) * xb
        x[..., b] = (1 - alpha) * xa + alpha * xb
        pa, pb, al = P[..., a], P[..., b], alpha.unsqueeze(-2)
        P = P.clone()
        P[..., a] = al * pa + (1 - al) * pb
        P[..., b] = (1 - al) * pa + al * pb
    return x, P


def group_sort_loss(x: Tensor, k: int, *, steepness: float = 1.0) -> Tensor:
    """GroCo's loss per row of pre-ordered scores ``x`` (R, k + m): k negatives first, then m positives.

    ``0.5 [BCE(p+, t) + BCE(p-, 1 - t)]`` averaged over the k + m elements,
    with ``p+`` the relaxed probability of landing in the top m ranks.
    Returns (R,).
    """
    _, P = relaxed_sort(x, steepness=steepness)
    p_plus = P[..., k:].sum(-1).clamp(0.0, 1.0)
    p_minus = P[..., :k].sum(-1).clamp(0.0, 1.0)
    t = torch.zeros_like(x)
    t[..., k:] = 1.0
    bce_plus = F.binary_cross_entropy(p_plus, t, reduction="none").mean(-1)
    bce_minus = F.binary_cross_entropy(p_minus, 1.0 - t, reduction="none").mean(-1)
    return 0.5 * (bce_plus + bce_minus)


def groco_scores(views: Tensor, *, topk_neg: int = 10, stop_grad: bool = True) -> tuple[Tensor, int]:
    """Pre-ordered scores (V n, k + m) of every anchor (view-major rows) and the number of negatives k."""
    V, n, _ = views.shape
    cand = views.detach() if stop_grad else views
    k = min(topk_neg, n - 1)
    # negatives: same view, other images, the k most similar
    within = torch.bmm(views, cand.transpose(1, 2))  # (V, n, n)
    eye = torch.eye(n, dtype=torch.bool, device=views.device)
    neg = within.masked_fill(eye, float("-inf")).topk(k, dim=-1).values.sort(-1).values
    # positives: the other views of the same image
    pairs = torch.einsum("aid,bid->aib", views, cand)  # (V, n, V): anchor view a, candidate view b
    others = ~torch.eye(V, dtype=torch.bool, device=views.device)
    pos = pairs[others[:, None, :].expand(V, n, V)].reshape(V, n, V - 1).sort(-1).values
    return torch.cat([neg, pos], dim=-1).reshape(V * n, k + V - 1), k


@register
class GroCo(Objective):
    """GroCo: group ordering constraints via a relaxed sorting network (see the module docstring).

    ``views``: (V, n, d), V >= 2, l2-normalised. With V < 2 (no positive) or
    n < 2 (no negative) the loss is 0.

    Args:
        topk_neg: negatives kept per anchor (default 10).
        steepness: the Cauchy relaxation's steepness (default 1).
        stop_grad: detach positives and negatives (default True).
    """

    info = ObjectiveInfo(
        name="groco",
        title="GroCo (group ordering constraints)",
        status=Status.CODE,
        citation="Shvetsova et al., Learning by Sorting: Self-supervised Learning with Group Ordering "
        "Constraints, arXiv 2301.02009",
        kind=Kind.VIEWS,
        inputs="views (V, n, d), V >= 2, l2-normalised",
        reducer="R7",
        section="9",
        default_temperature=None,
        notes="No temperature: the steepness scales similarity differences. Odd-even network (the bitonic "
        "option is not implemented). Multi-crop (only full crops as positives) is not implemented: every "
        "view is a positive.",
    )

    def __init__(self, *, topk_neg: int = 10, steepness: float = 1.0, stop_grad: bool = True) -> None:
        super().__init__()
        if topk_neg < 1:
            raise ValueError(f"groco: topk_neg must be >= 1, got {topk_neg}")
        self.topk_neg = topk_neg
        self.steepness = steepness
        self.stop_grad = stop_grad

    def forward(self, views: Tensor) -> Tensor:
        """Scalar loss for ``views`` (V, n, d)."""
        if views.dim() != 3:
            raise ValueError(f"groco: expected views of shape (V, n, d), got {tuple(views.shape)}")
        V, n, _ = views.shape
        if V < 2 or n < 2:
            return zero_loss(views)
        x, k = groco_scores(views, topk_neg=self.topk_neg, stop_grad=self.stop_grad)
        return group_sort_loss(x, k, steepness=self.steepness).mean()
