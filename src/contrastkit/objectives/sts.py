"""CoDiEmb objectives (``objectives.md`` section 18.2): CoSENT, the STS list-loss mix and the slot-wise IR InfoNCE.

Source: "CoDiEmb: A Collaborative yet Distinct Framework for Unified
Representation Learning in Information Retrieval and Semantic Textual
Similarity" (arXiv 2508.11442); formulas from the released code
(``TencentCloudADP/youtu-embedding``, ``training/CoDiEmb/train/{loss,model}.py``).

* ``cosent`` and ``codiemb`` take a list of predicted pair similarities
  ``pred`` (n,) (``diag(S)``, one cosine per pair) and gold scores ``gold``
  (n,); they use the list reducers of :mod:`contrastkit.objectives.lists`.
* ``codiemb_ir`` takes queries, several positives per query (with a mask for
  missing ones) and hard negatives, and is R1 with a slot-wise candidate set.

Paper/code note kept visible: the STS mix of the paper versions may differ
from the code (not verified); CoSENT is present but disabled in the code
(alternative weight 0.08).

Example::

    >>> import torch
    >>> from contrastkit.objectives import get
    >>> pred, gold = torch.tensor([0.9, 0.1, 0.5, 0.4]), torch.tensor([5.0, 0.0, 3.0, 2.5])
    >>> loss = get("codiemb")(pred, gold)
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from contrastkit.objectives.base import Kind, Objective, ObjectiveInfo, Status, zero_loss
from contrastkit.objectives.lists import cosent_loss, pearson_loss, pro_loss, rankkl_loss
from contrastkit.objectives.reducers import WeightedCE, reduce_rows
from contrastkit.objectives.registry import register
from contrastkit.objectives.targets import Targets
from contrastkit.objectives.temperature import Temperature, as_temperature

_CITATION = (
    "CoDiEmb: A Collaborative yet Distinct Framework for Unified Representation Learning in Information "
    "Retrieval and Semantic Textual Similarity, arXiv 2508.11442 (released code TencentCloudADP/youtu-embedding)"
)
_DISCREPANCY = "The paper's STS mix may differ from the released code (not verified); CoSENT is disabled in the code."


def _check_scores(name: str, pred: Tensor, gold: Tensor) -> None:
    if pred.dim() != 1 or gold.shape != pred.shape:
        raise ValueError(f"{name}: expected pred and gold of shape (n,), got {tuple(pred.shape)}, {tuple(gold.shape)}")


@register
class CoSENT(Objective):
    """CoSENT: ``log(1 + sum_{(a,b): y_a > y_b} exp((s_b - s_a) / tau))`` on a list of pairs (tau = 0.05).

    ``forward(pred (n,), gold (n,))``. See :func:`~contrastkit.objectives.lists.cosent_loss`.
    In CoDiEmb it is present but disabled (alternative weight 0.08 in the mix).
    """

    info = ObjectiveInfo(
        name="cosent",
        title="CoSENT (pairwise ranking of pair similarities)",
        status=Status.CODE,
        citation=_CITATION,
        kind=Kind.SCORES,
        inputs="pred (n,) pair similarities, gold (n,) scores",
        reducer="list reducer CoSENT (R4 on one row)",
        section="18.2",
        default_temperature=0.05,
        notes=_DISCREPANCY,
    )

    def __init__(self, *, temperature: float = 0.05) -> None:
        super().__init__()
        self.temperature = float(temperature)

    def forward(self, pred: Tensor, gold: Tensor) -> Tensor:
        _check_scores("cosent", pred, gold)
        return cosent_loss(pred, gold, tau=self.temperature)


class STSTerms(NamedTuple):
    """The unweighted CoDiEmb STS terms (0-d each; a term with weight 0 is not computed and is None)."""

    pro: Tensor | None
    pearson: Tensor | None
    rankkl: Tensor | None
    cosent: Tensor | None


@register
class CoDiEmb(Objective):
    """CoDiEmb STS loss: ``w_pro * PRO + w_pearson * (1 - r) + w_rankkl * RankKL + w_cosent * CoSENT``.

    ``forward(pred (n,), gold (n,))`` with ``pred`` the cosine of each pair.
    Defaults are the released-code weights ``0.5 * PRO + 2 * Pearson + 5 *
    RankKL`` with tau = 0.05 for PRO, RankKL and CoSENT; ``cosent_weight``
    defaults to 0 (disabled in the code; its alternative weight was 0.08). The
    paper's mix is not verified, hence the weights are a config. The code's
    optional middle-layer InfoNCE on pairs with ``gold >= threshold`` needs
    another layer's embeddings and is not part of this objective (use
    ``infonce`` on those embeddings and add it).
    """

    info = ObjectiveInfo(
        name="codiemb",
        title="CoDiEmb STS list-loss mix",
        status=Status.CODE,
        citation=_CITATION,
        kind=Kind.SCORES,
        inputs="pred (n,) pair similarities, gold (n,) scores",
        reducer="list reducers: PRO + Pearson + RankKL (+ CoSENT)",
        section="18.2",
        default_temperature=0.05,
        notes=_DISCREPANCY + " Weights default to the released code (0.5, 2, 5, 0); the middle-layer InfoNCE of "
        "the code is not included.",
    )

    def __init__(
        self,
        *,
        pro_weight: float = 0.5,
        pearson_weight: float = 2.0,
        rankkl_weight: float = 5.0,
        cosent_weight: float = 0.0,
        temperature: float = 0.05,
        pro_eps: float = 1e-8,
    ) -> None:
        super().__init__()
        self.weights = (float(pro_weight), float(pearson_weight), float(rankkl_weight), float(cosent_weight))
        self.temperature = float(temperature)
        self.pro_eps = float(pro_eps)

    def terms(self, pred: Tensor, gold: Tensor) -> STSTerms:
        """Each unweighted term (None where its weight is 0)."""
        _check_scores("codiemb", pred, gold)
        tau = self.temperature
        w_pro, w_pearson, w_rankkl, w_cosent = self.weights
        return STSTerms(
            pro=pro_loss(pred, gold, tau=tau, eps=self.pro_eps) if w_pro else None,
            pearson=pearson_loss(pred, gold) if w_pearson else None,
            rankkl=rankkl_loss(pred, gold, tau=tau) if w_rankkl else None,
            cosent=cosent_loss(pred, gold, tau=tau) if w_cosent else None,
        )

    def forward(self, pred: Tensor, gold: Tensor) -> Tensor:
        total = zero_loss(pred)
        for weight, term in zip(self.weights, self.terms(pred, gold), strict=True):
            if term is not None:
                total = total + weight * term
        return total


def slot_targets(n: int, num_neg: int, has_pos: Tensor, col_valid: Tensor) -> Targets:
    """Targets of one IR slot: ``n`` queries x ``[n slot positives | num_neg hard negatives]``.

    Row i's positive is column i when ``has_pos[i]``; columns with
    ``col_valid`` False (missing positives, padded negatives) are masked for
    every row.
    """
    index = torch.where(has_pos, torch.arange(n, device=has_pos.device), torch.full_like(has_pos, -1, dtype=torch.long))
    valid = col_valid[None, :].expand(n, n + num_neg)
    return Targets(pos_index=index[:, None], valid=valid, num_cols=n + num_neg)


@register
class CoDiEmbIR(Objective):
    """CoDiEmb IR loss: slot-wise multi-positive InfoNCE ("all" mode), mean over slots.

    ``forward(queries (n, d), positives (n, P, d), positive_mask (n, P) bool,
    negatives (n, K, d), negative_mask (n, K) bool | None)``; embeddings
    l2-normalised by the caller. For each slot t: the candidates are every
    query's t-th positive and every query's hard negatives; the target is the
    query's own t-th positive; R1 (cross-entropy) with mean over the queries
    that have a t-th positive. A query without one has no row in slot t, and a
    missing positive is not a candidate of any row. The loss is the mean over
    slots that have at least one row. The query's other positives are absent
    from slot t. Equals the released code when no positive is missing.
    tau: the code's constructor default 1.0 (a training argument, value used
    in the paper not verified).
    """

    info = ObjectiveInfo(
        name="codiemb_ir",
        title="CoDiEmb IR multi-positive InfoNCE (all mode)",
        status=Status.CODE,
        citation=_CITATION,
        kind=Kind.GROUPS,
        inputs="queries (n, d), positives (n, P, d), positive_mask (n, P) bool, negatives (n, K, d)",
        reducer="R1 per positive slot, mean over slots",
        section="18.2",
        default_temperature=1.0,
        notes="tau is a training argument in the code (constructor default 1.0); the paper's value not verified.",
    )

    def __init__(self, *, temperature: float | Temperature = 1.0, learnable_temperature: bool = False) -> None:
        super().__init__()
        if learnable_temperature and not isinstance(temperature, Temperature):
            temperature = Temperature(float(temperature), learnable=True)
        self.temperature = as_temperature(temperature)
        self._reducer = WeightedCE()

    def forward(
        self,
        queries: Tensor,
        positives: Tensor,
        positive_mask: Tensor,
        negatives: Tensor,
        negative_mask: Tensor | None = None,
    ) -> Tensor:
        n, P = positive_mask.shape
        K = negatives.shape[1]
        if positives.shape[:2] != (n, P) or queries.shape[0] != n or negatives.shape[0] != n:
            raise ValueError(
                "codiemb_ir: queries (n, d), positives (n, P, d), positive_mask (n, P), negatives (n, K, d)"
            )
        if negative_mask is None:
            negative_mask = torch.ones(n, K, dtype=torch.bool, device=queries.device)
        neg_flat = negatives.reshape(n * K, -1)
        neg_valid = negative_mask.reshape(n * K)
        scale = self.temperature.scale().to(queries.dtype)
        losses = []
        for t in range(P):
            has = positive_mask[:, t]
            if not bool(has.any()):
                continue
            cands = torch.cat([positives[:, t], neg_flat])
            targets = slot_targets(n, n * K, has, torch.cat([has, neg_valid]))
            W, M, _ = targets.block(dtype=queries.dtype, device=queries.device)
            losses.append(reduce_rows(self._reducer.rows((queries @ cands.T) * scale, W, M)))
        if not losses:
            return zero_loss(queries)
        return torch.stack(losses).mean()
