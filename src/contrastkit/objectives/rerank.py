"""Reranker objectives: a query's group of k scored documents is an (n, k) score matrix with targets.

A cross-encoder scores each (query, document) pair of a batch of n queries,
each with a group of k documents (its positives first, then negatives;
shorter groups padded and masked). The (n, k) scores are ``S``; the group
layout is :func:`group_targets`. Every matrix objective then applies:

* listwise InfoNCE is ``infonce`` on the group (one positive, or several with
  row-normalised weights), and the multi-positive reducers (``jointlh``,
  ``summarg``, ``lsepair``) apply unchanged;
* ``rerank_bce`` (pointwise binary cross-entropy, sentence-transformers'
  ``BinaryCrossEntropyLoss``): row loss = mean over the row's valid
  documents of ``BCE(sigmoid(L_ic), W_ic)``;
* ``sft`` (the seed paper's supervised fine-tuning loss): per pair, the
  cross-entropy of the answer token over {"yes", "no"}. With
  ``S = logit(yes) - logit(no)`` (:class:`~contrastkit.encoders.cross.DecoderReranker`'s
  score) ``log softmax([yes, no])`` is ``log sigmoid(+-S)``, so the loss is
  ``rerank_bce`` on that margin; it is registered under its own name so that
  configs and the catalogue say which objective was trained;
* ``ranknet``: mean over the row's (positive p, negative q) pairs of
  ``softplus(L_q - L_p)`` (Burges et al.), dense only;
* ``url``, the seed paper's unified reranking loss, which separates an
  objective's *weight* (how hard each pair pushes) from its *direction*
  (which score it pushes) so that CL weight with SFT direction and the
  reverse can be trained (:class:`UnifiedRerankLoss`).

``rerank_bce`` and ``sft`` are row-separable (the streamed statistics are the
BCE sum and the valid count ``|P| + |N|``), so a bi-encoder can use them with
the tiled engine too. Logits are ``L = S / tau`` with ``tau = 1`` by default
(cross-encoder scores are already logits).

Example::

    >>> import torch
    >>> from contrastkit.objectives import get
    >>> from contrastkit.objectives.rerank import group_targets
    >>> S = torch.randn(4, 8)                          # 4 queries x (1 positive + 7 negatives)
    >>> t = group_targets(torch.ones(4, dtype=torch.long), k=8)
    >>> listwise, pointwise = get("infonce")(S, t), get("rerank_bce")(S, t)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from contrastkit.objectives.base import Kind, MatrixObjective, ObjectiveInfo, ScaledObjective, Status
from contrastkit.objectives.reducers import RowLoss, RowReducer, Stat, Stats, WeightedCE, reduce_rows
from contrastkit.objectives.registry import register
from contrastkit.objectives.targets import Targets
from contrastkit.objectives.temperature import Temperature

_PAPER = (
    "Dai, Zhang et al., Supervised Fine-Tuning or Contrastive Learning? Towards Better Multimodal LLM Reranking, "
    "arXiv 2510.14824"
)


def group_targets(num_positives: Tensor, k: int, sizes: Tensor | None = None) -> Targets:
    """Targets of an (n, k) group matrix: row i's first ``num_positives[i]`` columns are its positives, columns
    from ``sizes[i]`` on are padding (masked; default: every row has k documents).

    Args:
        num_positives: (n,) long, each in ``[0, k]``.
        k: documents per row.
        sizes: (n,) long, the real group sizes (``num_positives[i] <= sizes[i] <= k``).
    """
    num_positives = torch.as_tensor(num_positives, dtype=torch.long).reshape(-1)
    sizes = torch.full_like(num_positives, k) if sizes is None else torch.as_tensor(sizes, dtype=torch.long)
    if bool((num_positives < 0).any()) or bool((sizes > k).any()) or bool((num_positives > sizes).any()):
        raise ValueError(f"group_targets: need 0 <= num_positives <= sizes <= k={k}")
    cols = torch.arange(k)
    pos_index = torch.where(cols < num_positives[:, None], cols, -1)
    exclude = torch.where(cols >= sizes[:, None], cols, -1)
    return Targets(pos_index=pos_index, exclude_index=exclude if bool((exclude >= 0).any()) else None, num_cols=k)


@dataclass(frozen=True)
class PointwiseMeanBCE(RowReducer):
    """``l_i = (1 / |M_i|) sum_{c in M_i} BCE(sigmoid(L_ic), W_ic)``; rows without a valid entry are dropped.

    R5 (:class:`~contrastkit.objectives.reducers.PointwiseSigmoid`) divided by the row's valid count, so that
    the loss is the mean over pairs whenever groups have equal sizes. ``W`` in [0, 1] is the label.
    """

    needs: ClassVar[frozenset[Stat]] = frozenset({Stat.BCE, Stat.NPOS, Stat.NNEG})

    def rows(self, L: Tensor, W: Tensor, M: Tensor) -> RowLoss:
        bce = F.binary_cross_entropy_with_logits(L, W, reduction="none")
        count = M.sum(-1)
        total = torch.where(M, bce, torch.zeros_like(bce)).sum(-1)
        return RowLoss(total / count.clamp(min=1).to(L.dtype), count > 0)

    def from_stats(self, stats: Stats) -> RowLoss:
        count = stats[Stat.NPOS] + stats[Stat.NNEG]
        return RowLoss(stats[Stat.BCE] / count.clamp(min=1).to(stats[Stat.BCE].dtype), count > 0)


@dataclass(frozen=True)
class PairwiseLogistic(RowReducer):
    """``l_i = mean_{p in P_i, q in N_i} softplus(L_iq - L_ip)``; dense only (the pairs do not stream)."""

    def rows(self, L: Tensor, W: Tensor, M: Tensor) -> RowLoss:
        pos = (W > 0) & M
        neg = M & ~pos
        pairs = pos[:, :, None] & neg[:, None, :]  # (A, p, q)
        diff = F.softplus(L[:, None, :] - L[:, :, None])
        count = pairs.sum((-1, -2))
        total = torch.where(pairs, diff, torch.zeros_like(diff)).sum((-1, -2))
        return RowLoss(total / count.clamp(min=1).to(L.dtype), count > 0)

    @property
    def streamable(self) -> bool:
        return False


_BCE = PointwiseMeanBCE()


@register
class RerankBCE(MatrixObjective):
    """Pointwise BCE over a group: ``l_i = mean_{c in M_i} BCE(sigmoid(S_ic / tau), W_ic)``."""

    info = ObjectiveInfo(
        name="rerank_bce",
        title="Pointwise binary cross-entropy (reranker)",
        status=Status.CODE,
        citation="Nogueira and Cho, Passage Re-ranking with BERT, arXiv 1901.04085; "
        "sentence-transformers BinaryCrossEntropyLoss",
        kind=Kind.MATRIX,
        inputs="S (n, k) pair scores (logits) + Targets (labels W in [0, 1])",
        reducer="mean BCE over the row's valid entries (R5 / |M_i|)",
        section="rerank",
        default_temperature=1.0,
    )

    @property
    def reducer(self) -> RowReducer:
        return _BCE


@register
class SFT(RerankBCE):
    """SFT yes/no cross-entropy: ``-log softmax([z_yes, z_no])_label`` per pair, mean over the group.

    ``S`` holds margins ``z_yes - z_no``; then the two-way cross-entropy is ``BCE(sigmoid(S), y)``.
    """

    info = ObjectiveInfo(
        name="sft",
        title="SFT yes/no cross-entropy (LLM reranker)",
        status=Status.PAPER,
        citation=_PAPER,
        kind=Kind.MATRIX,
        inputs="S (n, k) margins logit(yes) - logit(no) + Targets (yes for positives)",
        reducer="mean two-way CE over the row's valid entries (= rerank_bce on the margin)",
        section="rerank",
        default_temperature=1.0,
    )


@register
class RankNet(MatrixObjective):
    """RankNet: ``l_i = mean_{p in P_i, q in N_i} log(1 + exp(L_iq - L_ip))``."""

    info = ObjectiveInfo(
        name="ranknet",
        title="RankNet (pairwise logistic)",
        status=Status.PAPER,
        citation="Burges et al., Learning to Rank using Gradient Descent, ICML 2005",
        kind=Kind.MATRIX,
        inputs="S (n, k) pair scores + Targets",
        reducer="mean softplus(L_neg - L_pos) over the row's pairs (dense only)",
        section="rerank",
        default_temperature=1.0,
    )

    @property
    def reducer(self) -> RowReducer:
        return PairwiseLogistic()


Scheme = Literal["cl", "sft"]
_SCHEMES = ("cl", "sft")
_R1 = WeightedCE()


@register
class UnifiedRerankLoss(ScaledObjective):
    """The unified reranking loss: a weight scheme times a direction, from (yes, no) logits.

    Input ``Y`` (n, k, 2): each pair's logits of "yes" and "no" (a one-logit
    cross-encoder passes ``(score, 0)``), times ``1 / tau``: ``a = Y[..., 0]``,
    ``b = Y[..., 1]``. The two objectives differ in their gradient with
    respect to the model's outputs, ``sum_c g_ic * d(score_ic)``:

    | part | ``cl`` (InfoNCE over the group) | ``sft`` (per-pair yes/no CE) |
    |---|---|---|
    | weight ``g_ic`` | ``softmax_{M_i}(a_i)_c - Wn_ic`` | ``(sigmoid(a_ic - b_ic) - W_ic) / |M_i|`` |
    | direction (score pushed) | ``a`` (the yes logit) | ``a - b`` (yes against no) |

    (``Wn`` = ``W`` row-normalised.) The row loss is the surrogate
    ``sum_{c in M_i} stopgrad(g_ic) * d_ic`` whose gradient is weight x
    direction, shifted so that its value is the weight scheme's own loss
    (InfoNCE row or mean BCE row); rows kept as that loss keeps them. So
    ``weight=direction=cl`` has exactly InfoNCE's value and gradient,
    ``weight=direction=sft`` exactly ``sft``'s, and the mixed forms are the
    paper's probes. Dense only.
    """

    info = ObjectiveInfo(
        name="url",
        title="Unified reranking loss (weight x direction)",
        status=Status.PARTIAL,
        citation=_PAPER,
        kind=Kind.MATRIX,
        inputs="Y (n, k, 2): yes and no logits per pair + Targets (n, k)",
        reducer="stopgrad(weight) x direction; value of the weight scheme's loss",
        section="rerank",
        default_temperature=1.0,
        notes="Partial: weight and direction as we read the paper's decomposition (its code was not available here).",
    )

    def __init__(
        self,
        *,
        weight: Scheme = "sft",
        direction: Scheme = "sft",
        temperature: float | Temperature | None = None,
        learnable_temperature: bool = False,
    ) -> None:
        for key, value in (("weight", weight), ("direction", direction)):
            if value not in _SCHEMES:
                raise ValueError(f"url: {key} must be 'cl' or 'sft', got {value!r}")
        super().__init__(temperature=temperature, learnable_temperature=learnable_temperature)
        self.weight, self.direction = weight, direction

    @property
    def row_separable(self) -> bool:
        return False

    def forward(self, Y: Tensor, targets: Targets) -> Tensor:
        """Scalar loss for yes/no logits ``Y`` (n, k, 2) and group ``targets`` (n, k)."""
        if Y.dim() != 3 or Y.shape[-1] != 2 or tuple(Y.shape[:2]) != targets.shape:
            raise ValueError(f"url: expected Y of shape {(*targets.shape, 2)}, got {tuple(Y.shape)}")
        W, M, _ = targets.block(dtype=Y.dtype, device=Y.device)
        a, b = (Y * self.scale().to(Y.dtype)).unbind(-1)
        if self.weight == "cl":
            ref = _R1.rows(a, W, M)
            g = torch.softmax(a.detach().masked_fill(~M, float("-inf")), -1)
            g = torch.where(M, g, torch.zeros_like(g)) - W / W.sum(-1, keepdim=True).clamp(min=1e-12)
        else:
            ref = _BCE.rows(a - b, W, M)
            g = (torch.sigmoid((a - b).detach()) - W) / M.sum(-1, keepdim=True).clamp(min=1)
        d = a if self.direction == "cl" else a - b
        surrogate = torch.where(M, g * d, torch.zeros_like(d)).sum(-1)
        rows = ref.loss.detach() + surrogate - surrogate.detach()
        return reduce_rows(RowLoss(rows, ref.keep))
