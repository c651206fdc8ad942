"""SupCon ``L_out`` and SoftCon (``objectives.md`` sections 8 and 7).

SupCon is R1 with a row-normalised same-label ``W`` on the multiviewed batch
(every view of every sample is both an anchor and a candidate, self masked);
with unique labels and two views it is NT-Xent. SoftCon (``partial``) adds a
pointwise soft term against a label-similarity matrix to a cross-view InfoNCE;
its label similarity, pairwise loss, mixing weight and temperature are
placeholders, not paper values.

Example::

    >>> import torch, torch.nn.functional as F
    >>> from contrastkit.objectives import get
    >>> views = F.normalize(torch.randn(2, 8, 16), dim=-1)   # 2 views of 8 samples
    >>> labels = torch.tensor([0, 1, 0, 2, 1, 3, 3, 0])
    >>> loss = get("supcon", temperature=0.1)(views, labels)
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

import torch
from torch import Tensor

from contrastkit.objectives.base import Kind, Objective, ObjectiveInfo, Status, ViewMatrixObjective
from contrastkit.objectives.reducers import PointwiseSigmoid, RowReducer, WeightedCE, reduce_rows
from contrastkit.objectives.registry import register
from contrastkit.objectives.targets import Targets
from contrastkit.objectives.temperature import Temperature

_R1 = WeightedCE()
_SOFT_R1 = WeightedCE(require_negative=False)  # soft targets: every column may carry weight, no row is degenerate


def _check_views(name: str, views: Tensor, count: int | None = None) -> None:
    if views.dim() != 3 or (count is not None and views.shape[0] != count):
        want = f"({count}, n, d)" if count else "(V, n, d)"
        raise ValueError(f"{name}: expected views of shape {want}, got {tuple(views.shape)}")


@register
class SupCon(ViewMatrixObjective):
    """Supervised contrastive loss ``L_out``: the average over positives is outside the log.

    ``l_i = -(1/|P(i)|) sum_{p in P(i)} log( e^{z_i.z_p/tau} / sum_{a != i} e^{z_i.z_a/tau} )``

    Args:
        temperature: tau (default 0.1, the paper's setting).
        learnable_temperature: train ``log(1/tau)``.
        base_tau: the official code multiplies the mean loss by ``tau / base_tau``
            (``base_tau = 0.07`` there). None (default) means factor 1. The factor
            uses the current tau as a constant (no gradient through it).

    Call as ``supcon(views, labels)``: ``views`` (V, n, d) l2-normalised, ``labels``
    (n,) (any dtype with equality; None gives every sample its own label).
    The V*n rows are view-major (row ``v*n + i`` is view v of sample i); ``P(i)``
    are all other rows with the same label, including the other views of i;
    ``M = not I``. Anchors with no positive (a singleton label with V = 1) are
    dropped instead of the original code's NaN. Mean over kept anchors (the
    paper sums). Row-separable: ``ContrastiveLoss("supcon", tile_size=k)(views,
    labels)`` is exact. With unique labels and V = 2 it equals ``ntxent``.
    """

    info = ObjectiveInfo(
        name="supcon",
        title="SupCon (L_out)",
        status=Status.CODE,
        citation="Khosla et al., Supervised Contrastive Learning, arXiv 2004.11362",
        kind=Kind.LABELLED,
        inputs="views (V, n, d), l2-normalised; labels (n,)",
        reducer="R1 (row-normalised same-label W, M = not I)",
        section="8",
        default_temperature=0.1,
        notes="Status paper and code. Mean over anchors (paper: sum). The code scales by tau/base_tau "
        "(base_tau=0.07); here base_tau=None (factor 1) unless given. Anchors without positives are dropped; "
        "the original code gave NaN for them. L_in (log of the mean) is deliberately not implemented.",
    )

    def __init__(
        self,
        *,
        temperature: float | Temperature | None = None,
        learnable_temperature: bool = False,
        base_tau: float | None = None,
    ) -> None:
        super().__init__(temperature=temperature, learnable_temperature=learnable_temperature)
        if base_tau is not None and not base_tau > 0:
            raise ValueError(f"supcon: base_tau must be > 0, got {base_tau}")
        self.base_tau = base_tau

    @property
    def reducer(self) -> RowReducer:
        return _R1

    def loss_factor(self) -> float:
        return 1.0 if self.base_tau is None else self.temperature.value / self.base_tau

    def matrix(self, views: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor, Targets]:
        _check_views("supcon", views)
        V, n, d = views.shape
        if labels is None:
            labels = torch.arange(n, device=views.device)
        labels = torch.as_tensor(labels, device=views.device)
        if labels.dim() != 1 or labels.shape[0] != n:
            raise ValueError(f"supcon: expected labels of shape ({n},), got {tuple(labels.shape)}")
        z = views.reshape(V * n, d)
        ids = labels.repeat(V)
        return z, z, Targets.from_ids(ids, ids, exclude_self=True)


class LabelSimilarity(str, Enum):
    """How SoftCon's soft target ``w_ij`` is derived from multi-label vectors (none is verified)."""

    COSINE = "cosine"  # cos(y_i, y_j); 0 for an all-zero label vector
    JACCARD = "jaccard"  # sum_k min(y_ik, y_jk) / sum_k max(y_ik, y_jk); 0 when both are empty


class SoftPairLoss(str, Enum):
    """SoftCon's pairwise soft loss (none is verified)."""

    SIGMOID_BCE = "sigmoid_bce"  # R5: mean over all n^2 entries of BCE(sigmoid(S_ij / tau), w_ij)
    MSE = "mse"  # mean over all n^2 entries of (cos_ij - w_ij)^2 (no temperature)
    SOFT_CE = "soft_ce"  # R1 with row-normalised soft W, mean over anchors


def label_similarity(labels: Tensor, kind: LabelSimilarity | str = LabelSimilarity.COSINE) -> Tensor:
    """``w_ij`` (n, n) in [0, 1] from multi-label vectors ``labels`` (n, K) >= 0, with ``w_ii = 1`` forced."""
    if labels.dim() != 2:
        raise ValueError(f"label_similarity: expected labels of shape (n, K), got {tuple(labels.shape)}")
    y = labels.to(torch.promote_types(labels.dtype, torch.float32))
    if LabelSimilarity(kind) is LabelSimilarity.COSINE:
        norm = y.norm(dim=-1, keepdim=True)
        unit = y / torch.where(norm > 0, norm, torch.ones_like(norm))
        w = unit @ unit.T
    else:
        inter = torch.minimum(y[:, None, :], y[None, :, :]).sum(-1)
        union = torch.maximum(y[:, None, :], y[None, :, :]).sum(-1)
        w = inter / torch.where(union > 0, union, torch.ones_like(union))
    w = w.clamp(0.0, 1.0)
    return w.fill_diagonal_(1.0)


@register
class SoftCon(Objective):
    """SoftCon (``partial``): ``hard + soft_weight * soft`` on the cross-view matrix ``S = Z Z'^T``.

    * hard: InfoNCE on ``L = S / tau`` with diagonal targets (R1, one-hot W), one
      direction (online view rows, EMA view columns), mean over the n anchors;
    * soft: every entry ``S_ij`` against ``w_ij = label_similarity(Y)`` (``w_ii = 1``),
      with M all-true: R5 (sigmoid-BCE of ``L_ij``) averaged over all n^2 entries
      by default.

    Only this structure is known (authors' figure; the released code has no
    loss). **Placeholder defaults, not paper values:** cosine label
    similarity, sigmoid-BCE, ``soft_weight = 1``, ``tau = 1``.

    Args:
        temperature: tau for both terms' logits (placeholder 1.0).
        learnable_temperature: train ``log(1/tau)``.
        label_similarity: a :class:`LabelSimilarity` or a callable
            ``Y (n, K) -> w (n, n)`` with values in [0, 1].
        pair_loss: a :class:`SoftPairLoss` (``soft_ce`` is averaged over
            anchors, the others over all n^2 entries).
        soft_weight: the weight of the soft term.

    Call as ``softcon(views, labels)``: ``views`` (2, n, d) l2-normalised
    (online, EMA), ``labels`` (n, K) multi-hot or class fractions.
    """

    info = ObjectiveInfo(
        name="softcon",
        title="SoftCon (multi-label guided soft contrastive loss)",
        status=Status.PARTIAL,
        citation="Wang et al., Multi-Label Guided Soft Contrastive Learning for Efficient Earth Observation "
        "Pretraining, arXiv 2405.20462",
        kind=Kind.LABELLED,
        inputs="views (2, n, d) online/EMA, l2-normalised; labels (n, K) multi-label",
        reducer="R1 (hard, one-hot W) + R5 (soft, real W, mean over n^2)",
        section="7",
        default_temperature=1.0,
        notes="Partial: structure only. Placeholder defaults (no paper values): cosine label similarity, "
        "sigmoid-BCE soft loss, soft_weight=1, tau=1. w_ii is forced to 1.",
    )

    def __init__(
        self,
        *,
        temperature: float | Temperature | None = None,
        learnable_temperature: bool = False,
        label_similarity: LabelSimilarity | str | Callable[[Tensor], Tensor] = LabelSimilarity.COSINE,
        pair_loss: SoftPairLoss | str = SoftPairLoss.SIGMOID_BCE,
        soft_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.temperature = self.make_temperature(temperature, learnable=learnable_temperature)
        self.label_similarity = label_similarity if callable(label_similarity) else LabelSimilarity(label_similarity)
        self.pair_loss = SoftPairLoss(pair_loss)
        self.soft_weight = float(soft_weight)

    def soft_targets(self, labels: Tensor) -> Tensor:
        """``w`` (n, n) for multi-labels (n, K); a constant (no gradient)."""
        if isinstance(self.label_similarity, LabelSimilarity):
            return label_similarity(labels, self.label_similarity).detach()
        return self.label_similarity(labels).detach()

    def forward(self, views: Tensor, labels: Tensor) -> Tensor:
        _check_views("softcon", views, 2)
        n = views.shape[1]
        if labels.dim() != 2 or labels.shape[0] != n:
            raise ValueError(f"softcon: expected labels of shape ({n}, K), got {tuple(labels.shape)}")
        S = views[0] @ views[1].T
        L = S * self.temperature.scale().to(S.dtype)
        every = torch.ones_like(S, dtype=torch.bool)
        hard = reduce_rows(_R1.rows(L, torch.eye(n, dtype=S.dtype, device=S.device), every))
        w = self.soft_targets(labels).to(device=S.device, dtype=S.dtype)
        if w.shape != S.shape:
            raise ValueError(f"softcon: label similarity has shape {tuple(w.shape)}, expected {tuple(S.shape)}")
        if self.pair_loss is SoftPairLoss.SIGMOID_BCE:
            soft = reduce_rows(PointwiseSigmoid().rows(L, w, every)) / n
        elif self.pair_loss is SoftPairLoss.MSE:
            soft = (S - w).pow(2).mean()
        else:
            soft = reduce_rows(_SOFT_R1.rows(L, w, every))
        return hard + self.soft_weight * soft
